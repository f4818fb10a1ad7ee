"""Attacks on the file with plain sqlite3, as someone holding the file but not the key would do them.

Each must make `verify` fail, with a message that names the entry, checkpoint or key.
"""

from __future__ import annotations

import base64
import json
import sqlite3

import pytest
from conftest import make_log, sql, verify_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.audit import Checkpoint
from workbench.audit.canonical import entry_leaf_data
from workbench.audit.keys import SigningKey
from workbench.audit.merkle import CompactRange, leaf_hash

N = 20  # entries; checkpoints every 5, and a final one on close


@pytest.fixture
def log(log_path):
    make_log(log_path, N, every=5)
    assert verify_path(log_path).ok
    return log_path


def fails(path, *needles):
    result = verify_path(path)
    assert not result.ok, "the attack went unnoticed"
    assert "\n" not in result.first_error
    for needle in needles:
        assert needle in result.first_error, result.first_error
    return result.first_error


def rows(path, table="entries"):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    finally:
        conn.close()


def test_edit_a_payload_byte(log):
    sql(log, "UPDATE entries SET payload = replace(payload, 'MARKER_0007', 'MARKER_0008') WHERE seq = 7")
    fails(log, "entry 7", "do not match its hash")


def test_edit_a_timestamp(log):
    sql(log, "UPDATE entries SET time = '2001-01-01T00:00:00.000000+00:00' WHERE seq = 3")
    fails(log, "entry 3", "time")


def test_delete_an_entry(log):
    sql(log, "DELETE FROM entries WHERE seq = 4")
    fails(log, "entry 4 is missing")


def test_delete_the_last_entries_after_a_checkpoint(log):
    sql(log, "DELETE FROM entries WHERE seq >= 17")
    fails(log, f"checkpoint #{N // 5} (size {N})", "truncation")


def test_reorder_two_entries(log):
    conn = sqlite3.connect(log)
    with conn:
        conn.execute("UPDATE entries SET seq = -1 WHERE seq = 8")
        conn.execute("UPDATE entries SET seq = 8 WHERE seq = 9")
        conn.execute("UPDATE entries SET seq = 9 WHERE seq = -1")
    conn.close()
    fails(log, "entry 8")


def test_insert_a_forged_entry_in_the_middle(log):
    conn = sqlite3.connect(log)
    with conn:
        conn.execute("UPDATE entries SET seq = seq + 1000 WHERE seq >= 6")
        conn.execute("UPDATE entries SET seq = seq - 999 WHERE seq >= 1000")
        prev = conn.execute("SELECT hash FROM entries WHERE seq = 5").fetchone()[0]
        fields = ("2025-01-01T00:00:00.000000+00:00", "exec.finished", "s0", "agent:test/tiny", "user:tester",
                  "forged", '{"code":"rm -rf /"}')
        digest = leaf_hash(entry_leaf_data(6, *fields, prev))
        conn.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (6, *fields, prev, digest))
    conn.close()
    fails(log, "entry 7")


def test_insert_a_forged_entry_at_the_end_with_a_wrong_hash(log):
    last = rows(log)[-1]
    sql(log, "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (N, *last[1:8], last[9], b"\x01" * 32))
    fails(log, f"entry {N}")


def test_a_well_hashed_entry_after_the_last_checkpoint_is_reported_as_unsigned(log):
    """Hashes alone cannot tell a forged tail from an unsigned one; the result says it is unsigned."""
    last = rows(log)[-1]
    fields = (*last[1:7], '{"forged":true}')
    sql(log, "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (N, *fields, last[9], leaf_hash(entry_leaf_data(N, *fields, last[9]))))
    result = verify_path(log)
    assert result.signed_entries == N and result.entries == N + 1
    assert "1 newest entries not yet signed" in result.message()


def test_replace_a_checkpoint_signature(log):
    cp_id, _size, _time, note, _f = rows(log, "checkpoints")[1]
    blob = base64.b64decode(note.rsplit(" ", 1)[1])
    forged = note.rsplit(" ", 1)[0] + " " + base64.b64encode(blob[:4] + bytes(64)).decode() + "\n"
    sql(log, "UPDATE checkpoints SET note = ? WHERE id = ?", (forged, cp_id))
    fails(log, f"checkpoint #{cp_id}", "does not verify")


def _rewrite_with(path, attacker: SigningKey, edit_seq: int) -> None:
    """A thorough attacker: edit one payload, re-chain every later entry, re-sign every checkpoint."""
    conn = sqlite3.connect(path)
    with conn:
        entries = conn.execute("SELECT * FROM entries ORDER BY seq").fetchall()
        prev = bytes(32)
        tree = CompactRange()
        roots = {}
        for row in entries:
            seq, *fields = row[:8]
            if seq == edit_seq:
                fields[-1] = fields[-1].replace("print", "steal")
            digest = leaf_hash(entry_leaf_data(seq, *fields, prev))
            conn.execute("UPDATE entries SET payload = ?, prev = ?, hash = ? WHERE seq = ?",
                         (fields[-1], prev, digest, seq))
            prev = digest
            tree.append(digest)
            roots[tree.size] = tree.root()
        for cp_id, size, _time, note, _frontier in conn.execute("SELECT * FROM checkpoints").fetchall():
            origin = Checkpoint.from_note(note).origin
            conn.execute("UPDATE checkpoints SET note = ? WHERE id = ?",
                         (Checkpoint.sign(origin, size, roots[size], attacker).to_note(), cp_id))
    conn.close()


def test_rewrite_and_re_sign_with_a_different_key(log):
    _rewrite_with(log, SigningKey.generate(), edit_seq=2)
    fails(log, "checkpoint #1", "unknown key")


def test_rewrite_re_sign_and_add_the_attackers_key(log):
    attacker = SigningKey.generate()
    _rewrite_with(log, attacker, edit_seq=2)
    sql(log, "INSERT INTO keys VALUES (?, ?, ?, NULL)", (attacker.public.fingerprint, attacker.public.base64,
                                                         "2020-01-01"))
    fails(log, f"public key {attacker.public.fingerprint[:16]}", "not trusted")


def test_swap_the_stored_public_key(log):
    attacker = SigningKey.generate()
    sql(log, "UPDATE keys SET public_key = ?", (attacker.public.base64,))
    fails(log, "public key", "does not match its fingerprint")


def test_swap_the_stored_public_key_and_its_fingerprint_and_re_sign(log):
    attacker = SigningKey.generate()
    _rewrite_with(log, attacker, edit_seq=0)
    sql(log, "UPDATE keys SET public_key = ?, fingerprint = ?", (attacker.public.base64,
                                                                  attacker.public.fingerprint))
    fails(log, f"public key {attacker.public.fingerprint[:16]}", "not trusted")


def test_delete_a_middle_checkpoint(log):
    sql(log, "DELETE FROM checkpoints WHERE id = 2")
    fails(log, "checkpoint #2 is missing")


def test_change_the_origin_of_a_checkpoint(log):
    sql(log, "UPDATE checkpoints SET note = replace(note, 'test.local', 'evil.local') WHERE id = 3")
    fails(log, "checkpoint #3")


# --- a property: no single mutation of a random small log goes unnoticed ---------------------------------
ENTRY_COLUMNS = ["time", "kind", "session_id", "actor", "user", "event_id", "payload", "prev", "hash"]

mutations = st.one_of(
    st.tuples(st.just("edit"), st.sampled_from(ENTRY_COLUMNS), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
    st.tuples(st.just("swap"), st.integers(0, 10**6), st.integers(1, 10**6)),
    st.tuples(st.just("duplicate"), st.integers(0, 10**6)),
    st.tuples(st.just("checkpoint"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("key"), st.integers(0, 31)),
)


def _mutate(path, mutation) -> None:
    conn = sqlite3.connect(path)
    n = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    kind = mutation[0]
    with conn:
        if kind == "edit":
            _, column, at, byte = mutation
            seq = at % n
            value = conn.execute(f"SELECT {column} FROM entries WHERE seq = ?", (seq,)).fetchone()[0]
            if isinstance(value, bytes):
                data = bytearray(value)
                data[byte % len(data)] ^= 1 + byte % 255
                new: object = bytes(data)
            else:
                chars = list(value)
                pos = byte % len(chars)
                chars[pos] = "X" if chars[pos] != "X" else "Y"
                new = "".join(chars)
            conn.execute(f"UPDATE entries SET {column} = ? WHERE seq = ?", (new, seq))
        elif kind == "delete":
            # the newest entries are under the final checkpoint, so deleting any one is detectable
            conn.execute("DELETE FROM entries WHERE seq = ?", (mutation[1] % n,))
        elif kind == "swap" and n > 1:
            a = mutation[1] % n
            b = (a + 1 + mutation[2] % (n - 1)) % n
            conn.execute("UPDATE entries SET seq = -1 WHERE seq = ?", (a,))
            conn.execute("UPDATE entries SET seq = ? WHERE seq = ?", (a, b))
            conn.execute("UPDATE entries SET seq = ? WHERE seq = -1", (b,))
        elif kind == "swap":
            conn.execute("UPDATE entries SET kind = kind || 'x'")
        elif kind == "duplicate":
            row = conn.execute("SELECT * FROM entries WHERE seq = ?", (mutation[1] % n,)).fetchone()
            conn.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (n, *row[1:]))
        elif kind == "checkpoint":
            notes = conn.execute("SELECT id, note FROM checkpoints ORDER BY id").fetchall()
            cp_id, note = notes[mutation[1] % len(notes)]
            body = note.split("\n\n")[0]
            pos = mutation[2] % len(body)
            changed = body[:pos] + ("X" if body[pos] != "X" else "Y") + body[pos + 1:]
            conn.execute("UPDATE checkpoints SET note = ? WHERE id = ?", (note.replace(body, changed, 1), cp_id))
        elif kind == "key":
            (pub,) = conn.execute("SELECT public_key FROM keys").fetchone()
            raw = bytearray(base64.b64decode(pub))
            raw[mutation[1]] ^= 0x01
            conn.execute("UPDATE keys SET public_key = ?", (base64.b64encode(bytes(raw)).decode(),))
    conn.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 12), every=st.integers(1, 6), mutation=mutations,
       payloads=st.lists(st.dictionaries(st.text(min_size=1, max_size=5), st.one_of(st.integers(), st.text()),
                                         max_size=3), min_size=12, max_size=12))
def test_no_single_mutation_goes_unnoticed(tmp_path_factory, n, every, mutation, payloads):
    from workbench.audit import AuditLog
    from workbench.events import Event

    path = tmp_path_factory.mktemp("prop") / "audit.db"
    # Each example is a new log: its own origin (one origin with two histories is a fork the witness state flags).
    with AuditLog.open_path(path, origin=f"test.local/prop/{path.parent.name}", checkpoint_every=every) as log:
        for i in range(n):
            log.append(Event(kind="exec.finished", session_id="s", actor="agent:a", payload=payloads[i]))
    assert verify_path(path).ok
    _mutate(path, mutation)
    result = verify_path(path)
    assert not result.ok, f"undetected: {mutation}"
    assert result.first_error and "\n" not in result.first_error
    json.dumps(result.first_error)


def test_the_parallel_verifier_finds_the_same_first_problem(log, monkeypatch):
    from workbench.audit import entry_scan

    monkeypatch.setattr(entry_scan, "PARALLEL_MIN", 1)
    monkeypatch.setattr(entry_scan, "MAX_WORKERS", 3)
    monkeypatch.setattr(entry_scan.os, "cpu_count", lambda: 3)
    assert verify_path(log).ok
    sql(log, "UPDATE entries SET payload = replace(payload, 'MARKER_0015', 'MARKER_0016') WHERE seq = 15")
    sql(log, "UPDATE entries SET time = '2001-01-01T00:00:00.000000+00:00' WHERE seq = 12")
    fails(log, "entry 12", "do not match its hash")
    sql(log, "DELETE FROM entries WHERE seq = 3")
    fails(log, "entry 3 is missing")
