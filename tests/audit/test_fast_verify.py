"""The fast entry scan (workbench.audit.scan) reports exactly what the reference check reports.

Blocks are made tiny here so that a small log spreads over many blocks and over real worker processes
(`python -I scan.py`, reading through apsw), and every attack is compared with the reference scan
(`verify.scan_entries` over every row): the same verdict, the same first error, the same root. Each test
runs twice: with the scan's C loops (scan_native.c, as `make setup` builds them) and with the Python ones.
"""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from conftest import event, sql, verify_path

from tests.conftest import need
from workbench.audit import AuditLog, KeyStore, scan
from workbench.audit import entry_scan as entry_scan_module
from workbench.audit import verify as verify_module
from workbench.audit.canonical import entry_leaf_data
from workbench.audit.merkle import leaf_hash
from workbench.events import Event

ODD = ['say "hi"', "back\\slash", "tab\there", "nul\x00", "\u2028line", "é中😀", "\x7f", "lone \ud800 surrogate"]


@pytest.fixture(autouse=True, params=["native", "python"])
def loops(request, monkeypatch):
    """Which hashing loops the scan uses, here and in its workers (WORKBENCH_NATIVE_SCAN)."""
    if request.param == "native":
        need(scan.NATIVE is not None, "the audit scan's C module (make setup builds workbench/audit/scan_native.c)")
        monkeypatch.setenv("WORKBENCH_NATIVE_SCAN", "1")
    else:
        monkeypatch.setenv("WORKBENCH_NATIVE_SCAN", "0")
        monkeypatch.setattr(scan, "_packed_leaves", scan.packed_leaves)
        monkeypatch.setattr(scan, "_levels_of", scan.levels_of)
    return request.param


@pytest.fixture
def many_workers(monkeypatch):
    """Blocks of 4 entries, parallel from 1 entry, 3 workers: a small log exercises the whole machinery."""
    monkeypatch.setattr(entry_scan_module, "BLOCK", 4)
    monkeypatch.setattr(entry_scan_module, "PARALLEL_MIN", 1)
    monkeypatch.setattr(entry_scan_module, "MAX_WORKERS", 3)
    monkeypatch.setattr(entry_scan_module.os, "cpu_count", lambda: 3)


class ReferenceScan(entry_scan_module.EntryScan):
    """The reference: every row through `scan_entries`, no blocks, no workers."""

    def __init__(self, store, want=None):
        super().__init__(store, set())
        self.close()
        self.want, self.exact = set(want or ()), True


def reference(path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(verify_module, "EntryScan", ReferenceScan)
        return verify_path(path)


def odd_log(path, n=23):
    log = AuditLog.open_path(path, origin="test.local/audit/odd", checkpoint_every=5, key_store=KeyStore())
    for i in range(n):
        text = ODD[i % len(ODD)]
        log.append(Event(kind="exec.finished", session_id=f"s{i % 3}" if i % 4 else text, actor=f"agent:{text}",
                         user="user:t", payload={"i": i, "text": text}))
    log.close()


def same(path, monkeypatch):
    fast, ref = verify_path(path), reference(path, monkeypatch)
    assert (fast.ok, fast.first_error, fast.root, fast.entries) == (ref.ok, ref.first_error, ref.root, ref.entries)
    return fast


def test_fields_that_need_escaping_verify_through_the_fast_path_and_workers(log_path, many_workers, monkeypatch):
    odd_log(log_path)
    answered = []
    real = scan.from_json
    monkeypatch.setattr(scan, "from_json", lambda text: answered.append(1) or real(text))
    result = same(log_path, monkeypatch)
    assert result.ok and result.entries == 23 and result.checkpoints == 5
    assert len(answered) == 3  # three real worker processes answered (none fell back to this process)


@pytest.mark.parametrize("attack, says", [
    ("UPDATE entries SET payload = replace(payload, '\"i\":9', '\"i\":90') WHERE seq = 9", "entry 9"),
    ("UPDATE entries SET time = '2001-01-01T00:00:00.000000+00:00' WHERE seq = 14", "entry 14"),
    ("DELETE FROM entries WHERE seq = 6", "entry 6 is missing"),
    ("UPDATE entries SET actor = CAST(actor AS BLOB) WHERE seq = 10", "entry 10"),
    ("UPDATE entries SET hash = CAST(hash AS TEXT) WHERE seq = 11", "entry"),
    ("UPDATE entries SET payload = CAST(payload AS BLOB) WHERE seq = 3", "entry 3"),
    ("UPDATE entries SET user = 17 WHERE seq = 17", "entry 17"),
    ("UPDATE entries SET seq = -1 WHERE seq = 0", "entry 0"),
    ("UPDATE entries SET prev = zeroblob(32) WHERE seq = 8", "entry 8"),
])
def test_each_attack_fails_with_the_reference_message(log_path, many_workers, monkeypatch, attack, says):
    odd_log(log_path)
    sql(log_path, attack)
    result = same(log_path, monkeypatch)
    assert not result.ok and says in result.first_error and "\n" not in result.first_error


def test_an_escaped_quote_rewritten_as_a_backslash_and_quote_is_caught(log_path, many_workers, monkeypatch):
    """The one way an unescaped header could be confused: a field that holds `a"b` stored as `a\\"b`
    renders, unescaped, as the canonical text of the original. Both fast paths must refuse it."""
    log = AuditLog.open_path(log_path, origin="test.local/audit/q", checkpoint_every=100, key_store=KeyStore())
    for i in range(9):
        log.append(Event(kind="exec.finished", session_id='a"b', actor="agent:a", user="user:t", payload={"i": i}))
    log.close()
    conn = sqlite3.connect(log_path)
    seq, time, kind, _sid, actor, user, eid, payload, prev = conn.execute(
        "SELECT seq, time, kind, session_id, actor, user, event_id, payload, prev FROM entries WHERE seq = 5").fetchone()
    conn.close()
    forged = 'a\\"b'
    # The trap is real: the forged row, formatted without escaping, is byte for byte the signed header.
    unescaped = scan.HEADER % (actor.encode(), eid.encode(), kind.encode(),
                               hashlib.sha256(payload.encode()).hexdigest().encode(), prev.hex().encode(), seq,
                               forged.encode(), time.encode(), user.encode())
    assert unescaped == b"\x00" + entry_leaf_data(seq, time, kind, 'a"b', actor, user, eid, payload, prev)
    sql(log_path, "UPDATE entries SET session_id = ? WHERE seq = 5", (forged,))
    result = same(log_path, monkeypatch)
    assert not result.ok and "entry 5" in result.first_error


def test_a_worker_that_cannot_run_leaves_its_share_to_this_process(log_path, many_workers, monkeypatch):
    odd_log(log_path)
    good = verify_path(log_path)
    monkeypatch.setattr(entry_scan_module.sys, "executable", "/nonexistent/python")
    again = verify_path(log_path)
    assert again.ok and again.root == good.root
    monkeypatch.setattr(entry_scan_module.sys, "executable", "/bin/false")  # starts, answers nothing
    again = verify_path(log_path)
    assert again.ok and again.root == good.root


def test_roots_at_every_size_agree_with_the_plain_tree(log_path, many_workers):
    """Every checkpoint size inside a block, at a block's end and at the log's end: the assembled roots
    are the RFC 6962 roots (the checkpoints' own signed roots are checked against them)."""
    log = AuditLog.open_path(log_path, origin="test.local/audit/sizes", checkpoint_every=3, key_store=KeyStore())
    for i in range(26):
        log.append(event(i))
        if i in (3, 7, 11):  # sizes 4, 8, 12: block ends; the others every 3 entries fall inside blocks
            log.checkpoint()
    log.close()
    result = verify_path(log_path)
    assert result.ok and result.checkpoints >= 10
    conn = sqlite3.connect(log_path)
    rows = conn.execute("SELECT seq, time, kind, session_id, actor, user, event_id, payload, prev FROM entries "
                        "ORDER BY seq").fetchall()
    conn.close()
    from workbench.audit.merkle import root_of

    assert root_of([leaf_hash(entry_leaf_data(*r)) for r in rows]).hex() == result.root
