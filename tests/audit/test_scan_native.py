"""The scan's C loops (workbench/audit/scan_native.c) give exactly what the Python reference loops give.

`packed_leaves` decides whether a block passes the fast check, so every way a row can be wrong is tried on
rows read from a real log with the scan's own query: a changed field, a forged hash, a broken or mislengthed
link, a header with no placeholder or with two, headers longer than the C buffer on the stack, values of the
wrong type. `levels_of` is compared on every tree size up to 70 and on a full block.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys

import pytest

from tests.conftest import need
from workbench.audit import AuditLog, KeyStore, scan
from workbench.events import Event


@pytest.fixture
def native():
    need(scan.NATIVE is not None, "the audit scan's C module (make setup builds workbench/audit/scan_native.c)")
    return scan.NATIVE


@pytest.fixture
def rows(log_path):
    """PACKED_SQL rows of a 40-entry log whose fields need escaping, one of them long (over 1 KB)."""
    log = AuditLog.open_path(log_path, origin="test.local/audit/native", checkpoint_every=16, key_store=KeyStore())
    for i in range(40):
        actor = "agent:" + ("long " * 400 if i == 7 else f'say "hi" \\ {i} é😀')
        log.append(Event(kind="exec.finished", session_id=f"s{i % 3}", actor=actor, user="user:t",
                         payload={"i": i, "text": "x" * (i * 97)}))
    log.close()
    conn = scan.connect_apsw(log_path)
    try:
        return conn.execute(scan.PACKED_SQL, (0, 40)).fetchall()
    finally:
        conn.close()


def both(native, rows, last=scan.GENESIS):
    python, c = scan.packed_leaves(rows, last), native.packed_leaves(rows, last)
    assert python == c
    return c


def test_a_sound_block_gives_the_same_leaves(native, rows):
    leaves = both(native, rows)
    assert leaves is not None and len(leaves) == 40 and leaves == [r[3] for r in rows]
    assert both(native, rows[16:], rows[15][3]) == leaves[16:]  # a block that starts inside the log
    assert both(native, []) == []


def _with(row, index, value):
    return row[:index] + (value,) + row[index + 1:]


@pytest.mark.parametrize("change", [
    "payload", "header", "hash", "hash_short", "prev", "prev_short", "prev_long", "no_mark", "two_marks",
    "last", "prev_none", "payload_str", "header_str", "hash_none",
])
def test_each_wrong_row_is_refused_by_both(native, rows, change):
    at = 23
    row = rows[at]
    changed = {
        "payload": lambda: _with(row, 1, row[1] + b" "),
        "header": lambda: _with(row, 0, row[0].replace(b"exec.finished", b"exec.started")),
        "hash": lambda: _with(row, 3, hashlib.sha256(b"forged").digest()),
        "hash_short": lambda: _with(row, 3, row[3][:31]),
        "prev": lambda: _with(row, 2, bytes(32)),
        "prev_short": lambda: _with(row, 2, row[2][:31]),
        "prev_long": lambda: _with(row, 2, row[2] + b"\x00"),
        "no_mark": lambda: _with(row, 0, row[0].replace(b"\x01", b"")),
        "two_marks": lambda: _with(row, 0, row[0].replace(b"\x01", b"\x01\x01")),
        "prev_none": lambda: _with(row, 2, None),
        "payload_str": lambda: _with(row, 1, row[1].decode()),
        "header_str": lambda: _with(row, 0, row[0].decode("latin-1")),
        "hash_none": lambda: _with(row, 3, None),
        "last": lambda: row,
    }[change]()
    tampered = rows[:at] + [changed] + rows[at + 1:]
    assert both(native, tampered, bytes(31) + b"\x01" if change == "last" else scan.GENESIS) is None


def test_random_bytes_in_the_header_give_the_same_answer(native, rows):
    """Flipped bytes anywhere in a header, the placeholder included: both refuse, both the same way."""
    rng = random.Random(7)
    for _ in range(300):
        at = rng.randrange(len(rows))
        header = bytearray(rows[at][0])
        header[rng.randrange(len(header))] = rng.randrange(256)
        tampered = rows[:at] + [_with(rows[at], 0, bytes(header))] + rows[at + 1:]
        python, c = scan.packed_leaves(tampered, scan.GENESIS), native.packed_leaves(tampered, scan.GENESIS)
        assert python == c


def test_the_tree_levels_are_the_same_at_every_size(native):
    rng = random.Random(11)
    for n in [*range(71), scan.BLOCK]:
        leaves = [rng.randbytes(32) for _ in range(n)]
        assert native.levels_of(leaves) == scan.levels_of(leaves), n
    with pytest.raises(ValueError):
        native.levels_of([bytes(31)])


def test_a_worker_uses_the_c_loops_unless_told_not_to(native):
    """What a worker (`python -I scan.py`) loads: the C module by path, or the Python loops when
    WORKBENCH_NATIVE_SCAN=0."""
    probe = ("import runpy, sys; scope = runpy.run_path(sys.argv[1]); "
             "print(scope['NATIVE'] is not None, scope['_packed_leaves'].__module__)")
    for value, expected in (("1", "True scan_native"), ("0", "False <run_path>")):
        env = {**os.environ, "WORKBENCH_NATIVE_SCAN": value}
        done = subprocess.run([sys.executable, "-I", "-c", probe, scan.__file__], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.stdout.strip() == expected, done.stderr
