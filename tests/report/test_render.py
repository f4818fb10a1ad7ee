"""Rendering reports and reading them back as a reviewer's tools would (pypdf)."""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from tests.report.conftest import append, pdf_reader, pdf_text
from workbench.events import Event
from workbench.report import ReportCancelled, ReportError, render_report

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def run_events(sid, exec_id, code, out, exit_code, at, *, err="", files=(), artifacts=(), actor="user:alice",
               language="python"):
    def ev(kind, payload, offset):
        return Event(kind, sid, actor, payload, user="user:alice", time=at + timedelta(seconds=offset))

    events = [ev("exec.started", {"execution_id": exec_id, "language": language, "code": code,
                                  "limits": {"memory": "2g", "pids": 256}}, 0)]
    if out:
        events.append(ev("exec.output", {"execution_id": exec_id, "stream": "stdout", "text": out}, 0.1))
    if err:
        events.append(ev("exec.output", {"execution_id": exec_id, "stream": "stderr", "text": err}, 0.2))
    events.append(ev("exec.finished", {
        "execution_id": exec_id, "language": language, "exit_code": exit_code, "duration": 0.25,
        "timed_out": False, "killed_by": None, "limits_enforced": True, "notes": [],
        "stdout": {"total_bytes": len(out.encode()), "sha256": sha(out), "truncated": False,
                   "kept_bytes": len(out.encode())},
        "stderr": {"total_bytes": len(err.encode()), "sha256": sha(err), "truncated": False,
                   "kept_bytes": len(err.encode())},
        "files": list(files), "artifacts": list(artifacts)}, 0.3))
    return events


def session(sid, at, body, trigger="user:alice", **started):
    start = Event("session.started", sid, trigger, {"trigger": trigger, "project": "p", "project_id": "x",
                                                   "workbench_version": "0.1.0", **started},
                  user="user:alice", time=at)
    end = Event("session.finished", sid, trigger, {"outcome": "finished"}, user="user:alice",
                time=at + timedelta(minutes=5))
    return [start, *body, end]


@pytest.fixture
def small_log(project):
    events = session("sess-one", T0, [
        *run_events("sess-one", "ex1", "print('report-marker-one')\nraise SystemExit(4)\n", "report-marker-one\n", 4,
                    T0 + timedelta(seconds=1), err="exit 4\n"),
        Event("package.installed", "sess-one", "user:alice", {"name": "polars", "version": "1.9.0", "manager": "pip"},
              user="user:alice", time=T0 + timedelta(seconds=2)),
        *run_events("sess-one", "ex2", "echo unicode", "Grüße Здравствуйте 你好 \x1b[0m\n", 0,
                    T0 + timedelta(seconds=3), language="shell",
                    files=[{"path": "out/data.csv", "change": "created", "sha256": "d" * 64, "size": 12}]),
        Event("error", "sess-one", "agent:wb/tiny", {"message": "model answer was not JSON"}, user="user:alice",
              time=T0 + timedelta(seconds=4)),
    ])
    events += session("sess-two", T0 + timedelta(hours=1), [
        *run_events("sess-two", "ex3", "cat('r-marker')", "r-marker", 0, T0 + timedelta(hours=1, seconds=1),
                    language="r", actor="heartbeat:nightly"),
    ], trigger="heartbeat:nightly", schedule="nightly", cron="0 2 * * *")
    append(project, events)
    return project


def test_report_holds_code_exit_codes_hashes_and_verification(small_log, tmp_path):
    out = tmp_path / "report.pdf"
    summary = render_report(small_log, out)
    assert summary.verified and summary.executions == 3 and summary.sessions == 2 and summary.pages >= 4
    text = pdf_text(out)
    assert "print('report-marker-one')" in text and "raise SystemExit(4)" in text
    assert "exit 4" in text and "exit 0" in text
    assert sha("report-marker-one\n") in text  # the stdout digest
    assert "d" * 64 in text  # the file's hash
    assert summary.root and summary.root in text
    assert "Audit log verified at export time" in text
    assert "workbench audit verify -p" in text and "workbench audit verify --export" in text
    assert "polars" in text and "model answer was not JSON" in text
    assert "heartbeat:nightly" in text and "0 2 * * *" in text
    assert "BEGIN" not in text  # no stray markup
    assert "Grüße" in text and "Здравствуйте" in text and "\\x1b[0m" in text  # odd bytes shown escaped
    assert f"page 1 of {summary.pages}" in text.replace("\n", "")


def test_metadata_footer_and_outline(small_log, tmp_path):
    out = tmp_path / "report.pdf"
    summary = render_report(small_log, out)
    reader = pdf_reader(out)
    meta = reader.metadata
    assert small_log.name in meta.title and meta.author and "verified" in meta.subject
    assert meta.creation_date is not None
    last = reader.pages[-1].extract_text()
    assert f"log root {summary.root}" in last and small_log.name in last

    def titles(outline):
        for item in outline:
            if isinstance(item, list):
                yield from titles(item)
            else:
                yield item.title

    names = list(titles(reader.outline))
    assert "Verification" in names
    assert any(n.startswith("Session sess-one") for n in names)
    assert any(n.startswith("Session sess-two") for n in names)


def test_a_tampered_log_still_yields_a_report_with_the_red_banner(small_log, tmp_path):
    db = sqlite3.connect(small_log.audit_db)
    db.execute("UPDATE entries SET payload = replace(payload, 'report-marker-one', 'report-marker-TWO') "
               "WHERE kind = 'exec.started'")
    db.commit()
    db.close()
    out = tmp_path / "tampered.pdf"
    summary = render_report(small_log, out)
    assert not summary.verified and summary.verification_error
    text = pdf_text(out)
    assert "AUDIT LOG DID NOT VERIFY" in text
    assert text.count("DID NOT VERIFY") >= summary.pages  # on every page
    flat = " ".join(text.split())
    assert " ".join(summary.verification_error.split())[:60] in flat  # names what failed
    assert "report-marker-TWO" in text  # it shows what is in the log, flagged
    assert "verified" not in pdf_reader(out).metadata.subject.replace("DID NOT VERIFY", "")


def test_filters_by_session_and_time(small_log, tmp_path):
    out = tmp_path / "s2.pdf"
    summary = render_report(small_log, out, session="sess-two")
    text = pdf_text(out)
    assert summary.executions == 1 and "r-marker" in text and "report-marker-one" not in text
    assert "selected: session sess-two" in " ".join(text.split())
    summary = render_report(small_log, out, until=T0 + timedelta(minutes=30))
    assert summary.executions == 2 and summary.sessions == 1
    summary = render_report(small_log, out, since=T0 + timedelta(days=2))
    assert summary.executions == 0 and "No entries in the selection" in pdf_text(out)


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([(y * 8) % 256, 90, 160]) * width for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_images_are_embedded_only_when_their_hash_matches(project, tmp_path):
    plots = project.workspace / "plots"
    plots.mkdir()
    good, changed = _png(40, 30), _png(50, 20)
    (plots / "good.png").write_bytes(good)
    (plots / "changed.png").write_bytes(changed)
    arts = [{"path": "plots/good.png", "mime": "image/png", "sha256": sha(good), "size": len(good)},
            {"path": "plots/changed.png", "mime": "image/png", "sha256": "0" * 64, "size": 1},
            {"path": "plots/gone.png", "mime": "image/png", "sha256": "1" * 64, "size": 1},
            {"path": "../../etc/passwd", "mime": "image/png", "sha256": "2" * 64, "size": 1}]
    append(project, session("s", T0, run_events("s", "e", "plot()", "", 0, T0, artifacts=arts)))
    out = tmp_path / "img.pdf"
    render_report(project, out)
    reader = pdf_reader(out)
    images = [img for page in reader.pages for img in page.images]
    assert len(images) == 1
    flat = " ".join(pdf_text(out).split())
    assert "has changed since" in flat and "no longer in workspace/" in flat and "outside the workspace" in flat


def test_a_thousand_executions_render(project, tmp_path):
    from workbench.report import synthetic

    synthetic.fill(project, 1000)
    stages = set()
    summary = render_report(project, tmp_path / "big.pdf", progress=lambda d, t, stage: stages.add(stage))
    assert summary.executions == 1000 and summary.verified and summary.pages > 200
    assert {"read", "collect", "render"} <= stages
    last = pdf_reader(tmp_path / "big.pdf").pages[-1].extract_text()
    assert f"page {summary.pages:,} of {summary.pages:,}" in last.replace("\n", "")


def test_long_code_continues_across_pages_with_line_numbers(project, tmp_path):
    code = "".join(f"value_{i} = {i}  # line marker {i}\n" for i in range(1, 301))
    append(project, session("s", T0, run_events("s", "e", code, "ok\n", 0, T0)))
    out = tmp_path / "long.pdf"
    summary = render_report(project, out)
    text = pdf_text(out)
    assert "line marker 1\n" in text and "line marker 300" in text
    assert summary.pages >= 6


def test_cancel_leaves_no_file(project, tmp_path):
    from workbench.report import synthetic

    synthetic.fill(project, 200)
    out = tmp_path / "cancelled.pdf"
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(ReportCancelled):
        render_report(project, out, cancelled=cancelled)
    assert not out.exists() and not list(tmp_path.glob(".cancelled.pdf.*"))


def test_unwritable_destination_is_a_one_line_error(small_log, tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        render_report(small_log, tmp_path / "missing-dir" / "r.pdf")


def test_a_megabyte_one_liner_is_capped_and_said(project, tmp_path):
    code = "x = '" + "a" * 1_000_000 + "'\nprint('after-the-giant-line')\n"
    append(project, session("s", T0, run_events("s", "e", code, "", 0, T0)))
    out = tmp_path / "giant.pdf"
    summary = render_report(project, out)
    flat = " ".join(pdf_text(out).split())
    assert summary.pages < 120
    assert "more characters of this line in the log" in flat and "more lines" in flat


def test_install_network_is_in_the_session_and_refusals_in_the_summary(project, tmp_path):
    """A compliance reviewer sees where each install reached and what it was refused."""
    from tests.report.conftest import append, pdf_text
    from workbench.report import render_report

    def ev(kind, payload, offset):
        return Event(kind, "s", "agent:test", payload, user="user:alice", time=T0 + timedelta(seconds=offset))

    body = [
        ev("package.install_started", {"manager": "pip", "packages": ["wbevil"]}, 1),
        ev("install.egress", {"manager": "pip", "reached": ["pypi.org:443", "files.pythonhosted.org:443"],
                              "refused": ["exfil.example:443"], "unreachable": [], "requests": 7}, 2),
        ev("package.installed", {"name": "wbevil", "version": "1.0", "manager": "pip"}, 3),
        ev("install.egress", {"manager": "r", "reached": [], "refused": [],
                              "unreachable": ["cloud.r-project.org:443: could not connect: no name"],
                              "requests": 1}, 4),
    ]
    append(project, session("s", T0, body))
    out = tmp_path / "net.pdf"
    render_report(project, out)
    text = " ".join(pdf_text(out).split())
    assert "install network · pip" in text and "reached pypi.org:443, files.pythonhosted.org:443 · 7 requests" in text
    assert "refused exfil.example:443" in text
    assert "could not reach cloud.r-project.org:443: could not connect: no name" in text
    assert "Install network 2 through the egress proxy (1 reached their sources); destinations refused: 1" in text
    assert "Install network refusals" in text
    assert "install.egress x" not in text and "package.install_started x" not in text  # not "other entries"


def test_database_connections_are_counted_per_execution_and_refusals_listed(project, tmp_path):
    at = T0 + timedelta(seconds=1)
    body = run_events("sess-db", "exdb", "select 1", "1\n", 0, at, language="sql")
    conns = [Event("net.connection", "sess-db", "user:alice",
                   {"database": "sales", "role": "analyst", "credential": "wh", "duration": 0.02, "bytes_up": 94,
                    "bytes_down": 522, "refused": "", "execution_id": "exdb"}, user="user:alice",
                   time=at + timedelta(seconds=0.15)),
             Event("net.connection", "sess-db", "user:alice",
                   {"database": "hr", "refused": 'Workbench: the database "hr" is not allowed by this project\'s '
                    "network policy", "execution_id": "exdb"}, user="user:alice",
                   time=at + timedelta(seconds=0.2))]
    append(project, session("sess-db", T0, [*body[:-1], *conns, body[-1]]))
    out = tmp_path / "report.pdf"
    render_report(project, out)
    text = " ".join(pdf_text(out).split())
    assert "Database connections 2 through PgBouncer; refused: 1" in text
    assert "network database sales as analyst" in text and "94 B up" in text
    assert 'network database hr refused: Workbench: the database "hr" is not allowed' in text
    assert "Database connections refused" in text
