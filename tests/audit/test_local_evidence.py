"""The per-user witness state: a log that was ever signed on this machine never verifies unsigned.

Each attack changes the database as an attacker would (plain sqlite3, or a file copy, no Workbench code)
and must fail `verify` with one line naming the evidence this machine kept; the untouched log still
verifies; and nothing the witness state does ever changes the project's log.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from conftest import event, make_log, sql, verify_path

from workbench.audit import AuditLog, KeyStore
from workbench.audit.canonical import entry_leaf_data
from workbench.audit.verify import NEVER_SEEN
from workbench.audit.witness_state import STATE_FILE, WitnessState
from workbench.cli import main

N = 20  # entries, a checkpoint every 5: checkpoints of size 5, 10, 15, 20


def cli(capsys, *args):
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def files(path: Path) -> dict[str, str]:
    """The log file and its WAL, byte for byte."""
    out = {}
    for p in (path, path.with_name(path.name + "-wal")):
        data = p.read_bytes() if p.exists() else b""
        out[p.name] = hashlib.sha256(data).hexdigest() if data else "-"
    return out


def root_hex(path: Path, size: int) -> str:
    conn = sqlite3.connect(path)
    note = conn.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()[0]
    conn.close()
    import base64

    return base64.b64decode(note.split("\n")[2]).hex()


def rewrite_with_recomputed_chain(path: Path, seq: int, payload: str) -> None:
    """What someone who can write the file does: change one entry, recompute every hash after it, and
    delete the checkpoints whose signatures no longer match (the key is not theirs)."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE entries SET payload = ? WHERE seq = ?", (payload, seq))
        prev = conn.execute("SELECT hash FROM entries WHERE seq = ?", (seq - 1,)).fetchone()[0] if seq else bytes(32)
        rows = conn.execute("SELECT seq, time, kind, session_id, actor, user, event_id, payload FROM entries "
                            "WHERE seq >= ? ORDER BY seq", (seq,)).fetchall()
        for s, time, kind, sid, actor, user, eid, text in rows:
            digest = hashlib.sha256(b"\x00" + entry_leaf_data(s, time, kind, sid, actor, user, eid, text,
                                                             prev)).digest()
            conn.execute("UPDATE entries SET prev = ?, hash = ? WHERE seq = ?", (prev, digest, s))
            prev = digest
        conn.execute("DELETE FROM checkpoints")
    conn.close()


@pytest.fixture
def log(log_path):
    make_log(log_path, N, every=5)
    shutil.copy(log_path, log_path.with_name("untouched.db"))
    return log_path


def untouched_still_verifies(path: Path) -> None:
    """Put the copy taken before the attack back: it verifies, against the same witness state."""
    shutil.copy(path.with_name("untouched.db"), path)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    result = verify_path(path)
    assert result.ok and result.witnessed and "extends every one" in result.witness, result.first_error


def test_every_signed_checkpoint_is_recorded_outside_the_project_0600(log, isolated_keys):
    state = isolated_keys / STATE_FILE
    assert state.exists() and stat.S_IMODE(state.stat().st_mode) == 0o600
    seen = WitnessState().seen("test.local/audit/log")
    assert [s.size for s in seen] == [5, 10, 15, 20]
    assert seen[-1].root.hex() == root_hex(log, 20) and seen[-1].note.startswith("test.local/audit/log\n20\n")
    assert Path(seen[-1].db_path) == log.absolute()
    result = verify_path(log)
    assert result.ok and result.witnessed == 4 and "extends every one" in result.witness


def test_deleted_checkpoints_fail_naming_what_this_machine_saw(log, capsys):
    keep = log.with_name("keep.db")
    shutil.copy(log, keep)
    sql(log, "DELETE FROM checkpoints")
    result = verify_path(log)
    assert not result.ok
    assert result.first_error.startswith(f"this machine saw checkpoint size 20 with root {root_hex(keep, 20)[:12]}")
    assert "checkpoints were deleted" in result.first_error and "\n" not in result.first_error
    untouched_still_verifies(log)


def test_a_log_rolled_back_to_an_older_copy_fails(log_path):
    older = log_path.with_name("older.db")
    log = AuditLog.open_path(log_path, origin="test.local/audit/log", checkpoint_every=5, key_store=KeyStore())
    for i in range(10):
        log.append(event(i))
    log.close()
    shutil.copy(log_path, older)  # a backup taken at size 10 ...
    with AuditLog.open_path(log_path, checkpoint_every=5) as log:
        for i in range(10, 17):
            log.append(event(i))
    newest = files(log_path)
    assert verify_path(log_path).ok
    shutil.copy(older, log_path)  # ... put back later, with every signature in it intact
    result = verify_path(log_path)
    assert not result.ok and "this machine saw checkpoint size 17" in result.first_error
    assert "only 10 entries" in result.first_error and "rolled back" in result.first_error
    assert files(log_path) != newest


def test_truncated_entries_with_no_checkpoint_left_over_them_fail(log):
    sql(log, "DELETE FROM entries WHERE seq >= 12")
    sql(log, "DELETE FROM checkpoints WHERE size > 10")  # nothing left that says the log was longer ...
    result = verify_path(log)  # ... but this machine remembers
    assert not result.ok and "this machine saw checkpoint size 20" in result.first_error
    assert "only 12 entries" in result.first_error
    untouched_still_verifies(log)


def test_a_history_rewritten_with_a_recomputed_chain_fails_even_after_signing_again(log):
    rewrite_with_recomputed_chain(log, 3, '{"code":"print(3)","marker":"quietly changed"}')
    result = verify_path(log)
    assert not result.ok and "this machine saw checkpoint size 20" in result.first_error
    assert "history was rewritten" in result.first_error
    # The user, unaware, goes on working: Workbench signs the rewritten head with the real key. The new
    # checkpoint is not recorded as seen (the log does not extend what this machine signed) ...
    with AuditLog.open_path(log, checkpoint_every=5) as again:
        again.append(event(20))
        again.checkpoint()
        assert again.witness_problem and "does not extend it" in again.witness_problem
    assert [s.size for s in WitnessState().seen("test.local/audit/log")] == [5, 10, 15, 20]
    # ... so the log's own signatures all verify, and the witness state still catches the rewrite.
    result = verify_path(log)
    assert not result.ok and "history was rewritten" in result.first_error
    untouched_still_verifies(log)


def test_a_machine_that_never_signed_the_log_says_so(log, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "reviewer"))
    result = verify_path(log)
    assert result.ok and result.witness == NEVER_SEEN and result.witnessed == 0
    assert "never signed this log" in result.witness and "only the log's own signatures" in result.witness
    sql(log, "DELETE FROM checkpoints")
    assert verify_path(log).ok  # nothing on this machine can know; the line above says exactly that


def test_a_corrupted_witness_state_is_one_line_and_never_touches_the_log(log, isolated_keys, capsys):
    state = isolated_keys / STATE_FILE
    state.write_bytes(b"not a database at all " * 50)
    before = files(log)
    result = verify_path(log)
    assert not result.ok and "\n" not in result.first_error
    assert f"the witness state {state} is damaged" in result.first_error
    # Signing goes on; the checkpoint is committed to the log, the failure to record it is kept and said.
    with AuditLog.open_path(log, checkpoint_every=5) as again:
        again.append(event(N))
        cp = again.checkpoint()
        assert cp.size == N + 1 and again.witness_problem and "damaged" in again.witness_problem
    assert state.read_bytes() == b"not a database at all " * 50  # never "repaired" or replaced
    os.rename(state, state.with_name("aside.db"))
    assert verify_path(log).ok
    assert files(log) != before  # only the append above changed it


def test_a_witness_state_of_another_format_is_damaged_not_trusted(log, isolated_keys):
    state = isolated_keys / STATE_FILE
    conn = sqlite3.connect(state)
    with conn:
        conn.execute("UPDATE meta SET value = 'something-else/9' WHERE key = 'format'")
    conn.close()
    result = verify_path(log)
    assert not result.ok and "damaged" in result.first_error and "something-else/9" in result.first_error


def test_verify_cli_prints_the_evidence_in_one_line_and_exits_1(project, capsys):
    log = AuditLog.open(project)
    log.checkpoint_every = 4
    for i in range(9):
        log.append(event(i))
    log.close()
    code, out, err = cli(capsys, "audit", "verify", "-p", str(project.root))
    assert code == 0 and "this machine: this machine signed 3 of this log's checkpoints" in out
    sql(project.audit_db, "DELETE FROM checkpoints")
    for suffix in ("-wal", "-shm"):
        project.audit_db.with_name(project.audit_db.name + suffix).unlink(missing_ok=True)
    code, out, err = cli(capsys, "audit", "verify", "-p", str(project.root))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "this machine saw checkpoint size 9" in err and "checkpoints were deleted" in err


def test_a_rolled_back_log_catches_up_only_by_growing_past_what_was_seen(log_path):
    """After a rollback, appending and signing again does not launder it: the new checkpoints are not
    recorded (the log no longer holds what this machine signed), and verify keeps failing."""
    log = AuditLog.open_path(log_path, origin="test.local/audit/log", checkpoint_every=5, key_store=KeyStore())
    for i in range(10):
        log.append(event(i))
    log.close()
    older = log_path.with_name("older.db")
    shutil.copy(log_path, older)
    with AuditLog.open_path(log_path, checkpoint_every=5) as log:
        for i in range(10, 15):
            log.append(event(i))
    shutil.copy(older, log_path)
    with AuditLog.open_path(log_path, checkpoint_every=5) as log:
        for i in range(10, 25):
            log.append(event(i, note="another future"))
        assert log.witness_problem and "does not extend it" in log.witness_problem
    result = verify_path(log_path)
    assert not result.ok and "this machine saw checkpoint size 15" in result.first_error
    assert "history was rewritten" in result.first_error


def test_cli_bad_input_is_one_line(project, tmp_path, capsys, isolated_keys):
    log = AuditLog.open(project)
    for i in range(3):
        log.append(event(i))
    log.close()
    bad_key = tmp_path / "bad.vkey"
    bad_key.write_text("name+deadbeef+!!!not-base64\n", encoding="utf-8")
    code, out, err = cli(capsys, "audit", "verify", "-p", str(project.root), "--pubkey", str(bad_key))
    assert code == 2 and out == "" and err.count("\n") == 1 and "is not an Ed25519 public key" in err
    (isolated_keys / STATE_FILE).write_bytes(b"\x00garbage" * 100)
    before = files(project.audit_db)
    code, out, err = cli(capsys, "audit", "verify", "-p", str(project.root))
    assert code == 1 and out == "" and err.count("\n") == 1 and "witness state" in err and "damaged" in err
    assert files(project.audit_db) == before  # a failed witness operation changed nothing in the log
    log = AuditLog.open(project)
    log.append(event(3))
    log.close()
    code, out, err = cli(capsys, "audit", "checkpoint", "--new", "-p", str(project.root))
    assert code == 0 and out.startswith(f"{log.origin}\n4\n")
