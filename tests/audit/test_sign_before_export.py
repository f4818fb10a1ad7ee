"""Nothing is exported unsigned: `workbench audit export` signs a checkpoint over the head first when this
machine's key may sign the log, and otherwise says in one line how many entries no signature covers and
why, leaving the log untouched."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import event

from workbench.audit import AuditLog, KeyStore
from workbench.audit.head import sign_head
from workbench.audit.witness_state import WitnessState
from workbench.cli import main


def cli(capsys, *args):
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def live(project, signed: int, unsigned: int) -> None:
    """A log whose newest `unsigned` entries no checkpoint covers yet (a session still open)."""
    log = AuditLog.open(project)
    log.checkpoint_every = 10_000
    for i in range(signed):
        log.append(event(i))
    if signed:
        log.checkpoint()
    for i in range(signed, signed + unsigned):
        log.append(event(i))
    log.store.close()  # no close(): it would sign the head itself


def header(path):
    return json.loads(path.read_text(encoding="utf-8").split("\n")[0])


def test_export_signs_the_head_first(project, tmp_path, capsys):
    live(project, 4, 6)
    out = tmp_path / "e.jsonl"
    code, _, err = cli(capsys, "audit", "export", "-p", str(project.root), "--out", str(out))
    assert code == 0, err
    assert "exported 10 entries" in err and "covered by no signature" not in err
    assert header(out)["tree_size"] == 10
    with AuditLog.open(project, readonly=True) as log:
        cp = log.latest_checkpoint()
        assert cp.size == 10 and cp.origin == log.origin
    assert [s.size for s in WitnessState().seen(cp.origin)] == [4, 10]  # and this machine remembers it
    code, out_text, err = cli(capsys, "audit", "verify", "--export", str(out))
    assert code == 0 and out_text.startswith("ok: 10 entries")


def test_without_the_key_export_leaves_the_log_untouched_and_counts_the_unsigned(project, tmp_path, capsys,
                                                                                  monkeypatch):
    live(project, 4, 6)
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "elsewhere"))  # a reviewer's machine: no key
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in project.audit_db.parent.glob("audit.db*")}
    out = tmp_path / "e.jsonl"
    code, _, err = cli(capsys, "audit", "export", "-p", str(project.root), "--out", str(out))
    assert code == 0, err
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in project.audit_db.parent.glob("audit.db*")}
    assert after["audit.db"] == before["audit.db"]
    note = [line for line in err.splitlines() if "covered by no signature" in line]
    assert len(note) == 1 and "the 6 newest entries" in note[0]
    assert "this machine has no audit signing key" in note[0]
    assert header(out)["tree_size"] == 4


def test_sign_head_reports_why_it_did_not_sign(project, tmp_path, monkeypatch, isolated_keys):
    live(project, 3, 2)
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "empty"))
    done = sign_head(project.audit_db)
    assert done.checkpoint is None and done.unsigned == 2 and done.reason == "this machine has no audit signing key"
    assert done.note() == "the 2 newest of 5 entries are covered by no signature: this machine has no audit signing key"
    KeyStore().signing_key()  # a key of its own, but not one that signed this log
    done = sign_head(project.audit_db)
    assert done.checkpoint is None and "not one of the keys that signed this log" in done.reason
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(isolated_keys))  # back on the machine that signed it
    done = sign_head(project.audit_db)
    assert done.checkpoint is not None and done.unsigned == 0 and done.note() == ""
    again = sign_head(project.audit_db)
    assert again.checkpoint is None and again.unsigned == 0  # nothing new: nothing signed twice
