"""AuditLog behaviour: recording bus events, checkpoints, reading back, reopening."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from conftest import event, make_log, verify_path

from workbench.audit import AuditError, AuditLog
from workbench.events import SESSION_FINISHED, Event, EventBus


def test_attach_records_every_event_and_checkpoints_at_session_end(log_path):
    log = AuditLog.open_path(log_path, origin="test.local/bus", checkpoint_every=1000)
    bus = EventBus()
    unsubscribe = log.attach(bus)
    bus.emit("session.started", "s1", "user:me")
    bus.emit("exec.finished", "s1", "agent:a/m", {"exit_code": 0, "stdout": "hi\n"})
    assert log.latest_checkpoint() is None
    bus.emit(SESSION_FINISHED, "s1", "user:me")
    cp = log.latest_checkpoint()
    assert cp is not None and cp.size == 3
    unsubscribe()
    bus.emit("exec.finished", "s1", "agent:a/m")
    assert log.size() == 3
    log.close()


def test_sequence_numbers_are_zero_based_and_checkpoints_every_n(log_path):
    log = AuditLog.open_path(log_path, origin="test.local/n", checkpoint_every=4)
    assert [log.append(event(i)) for i in range(10)] == list(range(10))
    assert [cp.size for cp in log.checkpoints()] == [4, 8]
    log.close()  # a final checkpoint for the two unsigned entries
    with AuditLog.open_path(log_path, readonly=True) as again:
        assert [cp.size for cp in again.checkpoints()] == [4, 8, 10]


def test_close_without_new_entries_writes_no_checkpoint(log_path):
    make_log(log_path, 4, every=2)
    log = AuditLog.open_path(log_path)
    log.close()
    with AuditLog.open_path(log_path, readonly=True) as again:
        assert [cp.size for cp in again.checkpoints()] == [2, 4]


def test_payload_is_readable_json_text_in_the_file(log_path):
    log = AuditLog.open_path(log_path, origin="test.local/p")
    log.append(Event(kind="exec.output", session_id="s", actor="agent:a",
                     payload={"text": "MARKER-ünïcode", "raw": b"\x00\xffbytes", "n": float("nan")}))
    log.close()
    assert "MARKER-ünïcode".encode() in log_path.read_bytes() + (log_path.with_name("audit.db-wal").read_bytes()
                                                               if log_path.with_name("audit.db-wal").exists()
                                                               else b"")
    conn = sqlite3.connect(log_path)
    payload, kind = conn.execute("SELECT payload, typeof(payload) FROM entries").fetchone()
    conn.close()
    assert kind == "text"
    assert json.loads(payload) == {"n": {"$float": "nan"}, "raw": {"$bytes": "AP9ieXRlcw=="},
                                   "text": "MARKER-ünïcode"}
    assert verify_path(log_path).ok


def test_entries_filters_and_sessions(log_path):
    log = AuditLog.open_path(log_path, origin="test.local/f")
    base = datetime(2025, 3, 1, 12, tzinfo=UTC)
    for i in range(6):
        log.append(Event(kind="exec.finished" if i % 2 else "llm.action", session_id=f"s{i // 3}",
                         actor=f"agent:a{i % 2}", payload={"i": i}, time=base + timedelta(minutes=i)))
    assert [e.seq for e in log.entries(session="s1")] == [3, 4, 5]
    assert [e.seq for e in log.entries(since=base + timedelta(minutes=2), until=base + timedelta(minutes=4))] \
        == [2, 3, 4]
    assert [e.payload["i"] for e in log.entries(kinds=["llm.action"])] == [0, 2, 4]
    assert [e.seq for e in log.entries(from_seq=4)] == [4, 5]  # the tail, as the TUI's Audit pane reads it
    assert [e.seq for e in log.entries(from_seq=2, kinds=["llm.action"])] == [2, 4]
    entry = next(log.entries())
    assert entry.time == base and len(entry.hash) == 64 and entry.user.startswith("user:")
    sessions = log.sessions()
    assert [(s.id, s.entries, s.actors) for s in sessions] == [("s0", 3, ("agent:a0", "agent:a1")),
                                                               ("s1", 3, ("agent:a0", "agent:a1"))]
    assert sessions[0].first_time == base and sessions[1].last_time == base + timedelta(minutes=5)
    log.close()


def test_reopening_resumes_the_tree_and_stays_verifiable(log_path):
    make_log(log_path, 7, every=3)
    for round_ in range(3):
        log = AuditLog.open_path(log_path, checkpoint_every=3)
        for i in range(5):
            log.append(event(100 * round_ + i))
        log.close()
    result = verify_path(log_path)
    assert result.ok and result.entries == 22 and result.signed_entries == 22


def test_a_failed_batch_leaves_nothing_and_the_log_goes_on(log_path):
    log = AuditLog.open_path(log_path, origin="test.local/b", checkpoint_every=2)
    log.append(event(0))
    with pytest.raises(RuntimeError), log.batch():
        log.append(event(1))
        log.append(event(2))
        raise RuntimeError("crash inside a burst")
    assert log.size() == 1
    assert log.append(event(3)) == 1
    log.close()
    assert verify_path(log_path).ok


def test_inclusion_proof_of_an_entry(log_path):
    make_log(log_path, 11, every=4)
    with AuditLog.open_path(log_path, readonly=True) as log:
        proof = log.prove(6)
        assert proof.verified and proof.size == 11 and proof.seq == 6
        with pytest.raises(AuditError, match="no entry 11"):
            log.prove(11)


def test_verify_against_a_kept_checkpoint(log_path, tmp_path, monkeypatch):
    log = AuditLog.open_path(log_path, origin="test.local/k", checkpoint_every=100)
    for i in range(5):
        log.append(event(i))
    kept = log.checkpoint()
    for i in range(5, 9):
        log.append(event(i))
    log.close()
    with AuditLog.open_path(log_path, readonly=True) as again:
        result = again.verify(reference=kept)
        assert result.ok and result.consistent_with == 5
    conn = sqlite3.connect(log_path)
    with conn:
        conn.execute("DELETE FROM entries WHERE seq >= 3")
        conn.execute("DELETE FROM checkpoints")
    conn.close()
    with AuditLog.open_path(log_path, readonly=True) as again:
        result = again.verify()  # the machine that signed it remembers the checkpoints ...
        assert not result.ok and "this machine saw checkpoint size 9" in result.first_error
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "reviewer"))
    with AuditLog.open_path(log_path, readonly=True) as again:
        assert again.verify().ok  # ... a reviewer's machine has nothing that says the log was longer ...
        result = again.verify(reference=kept)  # ... but the reviewer's checkpoint does
        assert not result.ok and "truncated" in result.first_error


def test_missing_and_corrupt_files_are_one_line_errors(tmp_path):
    with pytest.raises(AuditError, match="no audit log"):
        AuditLog.open_path(tmp_path / "none.db", create=False)
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AuditError, match="not a readable audit log"):
        AuditLog.open_path(bad)
    assert bad.read_bytes() == b"this is not sqlite" * 100
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(AuditError, match="not a Workbench audit log"):
        AuditLog.open_path(other)


def test_open_from_a_project_uses_its_settings(project):
    log = AuditLog.open(project)
    log.append(event(0))
    log.close()
    assert project.audit_db.exists()
    with AuditLog.open(project, readonly=True) as again:
        assert again.origin == f"workbench.local/audit/{project.id}"
        assert again.verify().ok
