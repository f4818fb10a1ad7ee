"""The banner is green only when every entry is covered by a verified signature.

`render_report` signs a checkpoint over the head first when this machine's key may sign the log (a
session still open leaves its entries unsigned until it ends); where it may not, the banner is amber and
says how many entries no signature covers, and the verification page says why.
"""

from __future__ import annotations

import hashlib

from tests.report.conftest import pdf_text
from workbench.audit import AuditLog
from workbench.events import Event
from workbench.report import render_report


def open_session(project, n: int) -> None:
    """Entries of a session that has not finished: appended, never checkpointed (as in a live TUI)."""
    log = AuditLog.open(project)
    log.checkpoint_every = 10_000
    for i in range(n):
        log.append(Event("exec.output", "live", "user:alice", {"text": f"line {i}\n"}, user="user:alice"))
    # Left as a crashed or still-running session leaves it: no close, so no final checkpoint.
    log.store.close()


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flat(path) -> str:
    return " ".join(pdf_text(path).split())


def test_a_report_made_while_a_session_is_open_signs_the_head_first(project, tmp_path):
    open_session(project, 7)
    with AuditLog.open(project, readonly=True) as log:
        assert log.latest_checkpoint() is None and log.size() == 7
    summary = render_report(project, tmp_path / "r.pdf")
    with AuditLog.open(project, readonly=True) as log:
        cp = log.latest_checkpoint()
        assert cp is not None and cp.size == 7
    assert summary.verified
    text = flat(tmp_path / "r.pdf")
    assert "Audit log verified at export time" in text and "every entry is covered by a verified signature" in text
    assert "covered by no signature" not in text


def test_without_the_key_the_banner_is_amber_and_counts_the_unsigned(project, tmp_path, monkeypatch):
    log = AuditLog.open(project)
    log.checkpoint_every = 10_000
    for i in range(5):
        log.append(Event("exec.output", "s", "user:alice", {"text": f"{i}\n"}, user="user:alice"))
    log.checkpoint()  # 5 signed ...
    for i in range(5, 12):
        log.append(Event("exec.output", "s", "user:alice", {"text": f"{i}\n"}, user="user:alice"))
    log.store.close()  # ... 7 not
    # Another machine (a reviewer's): it has no key of this log's, so it must not and cannot sign.
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "reviewer-data"))
    before = digest(project.audit_db)
    summary = render_report(project, tmp_path / "amber.pdf")
    assert digest(project.audit_db) == before  # nothing was written to the log
    assert summary.verified
    text = flat(tmp_path / "amber.pdf")
    assert "Audit log intact, but 7 entries are covered by no signature" in text
    assert "Audit log verified at export time" not in text
    assert "1 verified checkpoint(s) sign entries 0 to 4" in text and "from entry 5" in text
    assert "the 7 newest of 12 entries are covered by no signature: this machine has no audit signing key" in text
    assert "this machine never signed this log" in text  # the witness state row says what it could not check


def test_a_log_no_checkpoint_signs_is_amber_on_a_machine_without_its_key(project, tmp_path, monkeypatch):
    other = AuditLog.open(project)  # signed by this machine's key once, so the log holds a key ...
    other.append(Event("exec.output", "s", "user:alice", {"text": "x\n"}, user="user:alice"))
    other.close()
    import sqlite3

    conn = sqlite3.connect(project.audit_db)
    with conn:
        conn.execute("DELETE FROM checkpoints")  # ... and then lost its only checkpoint
    conn.close()
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "reviewer-data"))
    render_report(project, tmp_path / "none.pdf")
    text = flat(tmp_path / "none.pdf")
    assert "Audit log intact, but 1 entry is covered by no signature" in text
    assert "no checkpoint signs any of them" in text
