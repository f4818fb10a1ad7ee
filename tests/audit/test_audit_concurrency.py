"""Crash safety and several writers: SIGKILL mid-append, two processes appending, readers meanwhile."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from conftest import verify_path

from workbench.audit import AuditLog

APPENDER = textwrap.dedent("""
    import sys, keyring
    from keyring.backends import fail
    keyring.set_keyring(fail.Keyring())  # the same file key as the test process
    from workbench.audit import AuditLog
    from workbench.events import Event

    path, name, count, burst = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    log = AuditLog.open_path(path, origin="test.local/concurrent", checkpoint_every=7)
    i = 0
    while count < 0 or i < count:
        with log.batch():
            for _ in range(burst):
                log.append(Event(kind="exec.output", session_id=name, actor=f"agent:{name}",
                                 payload={"i": i, "writer": name, "text": "x" * (i % 300)}))
                i += 1
    log.close()
""")


def spawn(path, name, count, burst=1):
    return subprocess.Popen([sys.executable, "-c", APPENDER, str(path), name, str(count), str(burst)],
                            env=os.environ.copy(), stderr=subprocess.PIPE, text=True)


def count_rows(path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def wait_for(path, rows, proc, limit=30.0):
    deadline = time.monotonic() + limit
    while count_rows(path) < rows:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the appender is too slow"
        time.sleep(0.02)


def test_sigkill_mid_append_leaves_a_log_that_verifies(log_path):
    AuditLog.open_path(log_path, origin="test.local/concurrent").close()
    for round_, burst in enumerate((1, 5, 1)):
        proc = spawn(log_path, f"w{round_}", -1, burst)
        wait_for(log_path, count_rows(log_path) + 150, proc)
        # Verify while it writes: a reader sees a consistent snapshot, never half an entry.
        during = verify_path(log_path)
        assert during.ok, during.first_error
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        result = verify_path(log_path)
        assert result.ok, result.first_error
        assert result.entries >= during.entries
        with AuditLog.open_path(log_path, readonly=True) as log:
            last = list(log.entries())[-1]
            assert last.payload["writer"] == f"w{round_}"
    # A writer that comes after the crashes continues the chain.
    with AuditLog.open_path(log_path) as log:
        log.checkpoint()
    assert verify_path(log_path).ok


def test_two_processes_append_to_one_log(log_path):
    AuditLog.open_path(log_path, origin="test.local/concurrent").close()
    procs = [spawn(log_path, "a", 300, 3), spawn(log_path, "b", 300, 1)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    result = verify_path(log_path)
    assert result.ok, result.first_error
    assert result.entries == 600 and result.signed_entries == 600
    with AuditLog.open_path(log_path, readonly=True) as log:
        for name in ("a", "b"):
            assert [e.payload["i"] for e in log.entries(session=name)] == list(range(300))


def test_an_open_writer_and_another_process_interleave(log_path):
    """The TUI holds the log open while `workbench exec` appends from another process."""
    log = AuditLog.open_path(log_path, origin="test.local/concurrent", checkpoint_every=7)
    from conftest import event

    log.append(event(0))
    proc = spawn(log_path, "cli", 20, 2)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    log.append(event(1))  # must chain after the other process's entries
    log.close()
    result = verify_path(log_path)
    assert result.ok and result.entries == 22
