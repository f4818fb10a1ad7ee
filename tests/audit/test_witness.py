"""Cosigning witnesses end to end: a real `workbench witness serve` in its own process on loopback, the
project's log pushing to it as checkpoints are signed, and the attacks a witness is there to catch.

Each attack test checks that the attack is refused or reported as designed, in one line, that a failed
witness operation never changes the log, and that the untouched log still verifies.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.audit.conftest import event
from tests.audit.witness_procs import (
    WORKBENCH,
    DripServer,
    LyingWitness,
    SilentServer,
    WitnessProcess,
    free_port,
)
from workbench.audit import AuditLog, KeyStore
from workbench.audit.cosign import WitnessKey, cosignatures_for, log_vkey, stored_cosignatures, witness_report
from workbench.audit.verify import parse_checkpoints
from workbench.audit.witness import Registry
from workbench.project import Project

pytestmark = pytest.mark.timeout(180)


# --- helpers -------------------------------------------------------------------------------------
def cli(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", **env)
    return subprocess.run([str(WORKBENCH), *args], capture_output=True, text=True, env=full, timeout=timeout)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    return lines[0]


def sign(log: AuditLog, project: Project) -> object:
    """Sign the head; the log announces it (`hooks.checkpoint_signed`) and the witnesses get it."""
    return log.checkpoint()


def grow(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.append(event(i))


def digest(path: Path) -> dict[str, str]:
    """The log file and its WAL, byte for byte (a reader may leave an empty WAL: no content, same as none)."""
    out = {}
    for p in (path, path.with_name(path.name + "-wal")):
        data = p.read_bytes() if p.exists() else b""
        out[p.name] = hashlib.sha256(data).hexdigest() if data else "-"
    return out


def report(project: Project):
    conn = sqlite3.connect(f"{project.audit_db.as_uri()}?mode=ro", uri=True)
    try:
        origin = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()[0]
        checkpoints = parse_checkpoints(
            [(r[0], r[1], r[2], r[3], bytes(r[4])) for r in
             conn.execute("SELECT id, size, time, note, frontier FROM checkpoints ORDER BY id")], origin)
        return witness_report(conn, checkpoints, origin)
    finally:
        conn.close()


@pytest.fixture
def project(tmp_path) -> Project:
    return Project.init(tmp_path / "proj")


@pytest.fixture
def log(project):
    log = AuditLog.open(project, key_store=KeyStore())
    yield log
    log.close()


@pytest.fixture
def witness(tmp_path, log):
    """A witness that trusts this project's log key."""
    proc = WitnessProcess(tmp_path / "witness-data", allow=(log_vkey(log.origin, KeyStore().signing_key().public),))
    proc.start()
    yield proc
    proc.stop()


def register(log: AuditLog, url: str, vkey: str) -> None:
    with Registry.open() as registry:
        registry.add(log.origin, url, WitnessKey.parse(vkey))


# --- item 3: push on sign, queue, retry, verify ----------------------------------------------------
def test_checkpoints_are_cosigned_as_they_are_signed_and_verify_reports_it(project, log, witness):
    register(log, witness.url, witness.vkey)
    grow(log, 10)
    first = sign(log, project)
    grow(log, 10, 10)
    second = sign(log, project)
    grow(log, 7, 20)
    third = sign(log, project)
    for cp in (first, second, third):
        found = cosignatures_for(project.audit_db, cp)
        assert [c.status for c in found] == ["verified"], cp
        assert found[0].vkey == witness.vkey
    # The witness followed the log through consistency proofs, and says so.
    logs = witness.run("logs")
    assert f"{log.origin}: cosigned size 27 root {third.root_hex[:12]}" in logs.stdout
    verified = cli("audit", "verify", "-p", str(project.root), "--require-witness")
    assert verified.returncode == 0, verified.stderr
    assert "newest checkpoint #3 (size 27) cosigned by workbench.local/witness/" in verified.stdout
    assert "checkpoint size 20: cosigned by" in verified.stdout and "checkpoint size 10: cosigned by" in verified.stdout
    listed = cli("audit", "witness", "list", "-p", str(project.root))
    assert "cosigned size 27" in listed.stdout


def test_a_push_while_the_witness_is_down_is_delivered_later(project, log, witness):
    register(log, witness.url, witness.vkey)
    grow(log, 5)
    sign(log, project)
    witness.stop()
    grow(log, 5, 5)
    before_down = sign(log, project)
    with Registry.open() as registry:
        assert [q.size for q in registry.queued(log.origin)] == [10]
        assert "Connection refused" in (registry.queued(log.origin)[0].last_error or "")
    assert cosignatures_for(project.audit_db, before_down) == []
    # verify is still fine, and says what is pending; --require-witness refuses, in one line
    plain = cli("audit", "verify", "-p", str(project.root))
    assert plain.returncode == 0 and "has no cosignature; 1 witness(es) registered (1 push(es) queued)" in plain.stdout
    required = cli("audit", "verify", "-p", str(project.root), "--require-witness")
    assert required.returncode == 1
    assert "--require-witness: checkpoint #2 (size 10) has no cosignature" in one_line(required.stderr)
    # Back up on the same address: the next signing delivers the queued checkpoint and the new one.
    witness.start()
    grow(log, 5, 10)
    after_up = sign(log, project)
    with Registry.open() as registry:
        assert registry.queued(log.origin) == []
    assert [c.status for c in cosignatures_for(project.audit_db, before_down)] == ["verified"]
    assert [c.status for c in cosignatures_for(project.audit_db, after_up)] == ["verified"]
    assert cli("audit", "verify", "-p", str(project.root), "--require-witness").returncode == 0


def test_witness_push_delivers_the_queue_on_demand(project, log, witness):
    register(log, witness.url, witness.vkey)
    witness.stop()
    grow(log, 4)
    cp = sign(log, project)
    witness.start()
    pushed = cli("audit", "witness", "push", "-p", str(project.root))
    assert pushed.returncode == 0, pushed.stderr
    assert f"cosigned size {cp.size}" in pushed.stdout
    assert [c.status for c in cosignatures_for(project.audit_db, cp)] == ["verified"]


def test_a_witness_that_does_not_trust_the_log_yet(project, log, tmp_path):
    other = WitnessProcess(tmp_path / "untrusting").start()
    try:
        grow(log, 3)
        sign(log, project)
        added = cli("audit", "witness", "add", "-p", str(project.root), other.url, other.vkey)
        assert added.returncode == 0
        assert "it does not know this log (404); its operator can run: workbench witness allow" in \
            one_line(added.stderr)
        allow_line = next(line for line in added.stdout.splitlines() if "workbench witness allow" in line)
        allowed = other.run("allow", allow_line.rsplit(" ", 1)[1])
        assert allowed.returncode == 0, allowed.stderr
        pushed = cli("audit", "witness", "push", "-p", str(project.root))
        assert pushed.returncode == 0 and "cosigned size 3" in pushed.stdout
    finally:
        other.stop()


# --- item 7: attacks -----------------------------------------------------------------------------
def test_a_rewrite_after_a_cosigned_checkpoint_is_refused_by_the_witness_and_caught_by_verify(
        project, log, witness, tmp_path, monkeypatch):
    register(log, witness.url, witness.vkey)
    grow(log, 10)
    cosigned = sign(log, project)
    log.close()
    pristine = tmp_path / "pristine.db"
    shutil.copy(project.audit_db, pristine)
    # The attacker holds a copy of the key and, on their own machine, rebuilds the history with entry 3
    # changed: a recomputed chain, a re-signed checkpoint, the cosignatures table dropped. Their push to
    # the witness (the URL is no secret) is the one the witness must refuse.
    victim_data = Path(os.environ["WORKBENCH_DATA_DIR"])
    attacker_data = tmp_path / "attacker-data"
    attacker_data.mkdir(mode=0o700)
    shutil.copy(KeyStore().key_file, attacker_data / KeyStore().key_file.name)
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(attacker_data))
    register(log, witness.url, witness.vkey)
    forged_path = tmp_path / "forged.db"
    forged = AuditLog.open_path(forged_path, origin=log.origin, checkpoint_every=1000, key_store=KeyStore())
    for i in range(12):
        forged.append(event(i, note="quietly changed") if i == 3 else event(i))
    forged_cp = forged.checkpoint()
    forged.close()
    # The witness refused it (422: not an extension of what it cosigned); nothing was stored in the log.
    with Registry.open() as registry:
        refusals = registry.refusals(log.origin)
        assert registry.queued(log.origin) == []
    assert [(size, status) for _v, size, status, _r, _t in refusals] == [(12, 422)]
    assert "the log was rewritten" in refusals[0][3]
    assert cosignatures_for(forged_path, forged_cp) == []
    assert f"{log.origin}: cosigned size 10 root {cosigned.root_hex[:12]}" in witness.run("logs").stdout
    # The forged file replaces the project's log on the victim's machine.
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(victim_data))
    for suffix in ("", "-wal", "-shm"):
        project.audit_db.with_name(project.audit_db.name + suffix).unlink(missing_ok=True)
    shutil.copy(forged_path, project.audit_db)
    # verify catches it from what this machine saw the witness cosign, in one line, exit 1.
    found = report(project)
    assert found.first_error is not None and "cosign size 10 with root" in found.first_error
    assert cosigned.root_hex[:12] in found.first_error
    verified = cli("audit", "verify", "-p", str(project.root))
    assert verified.returncode == 1 and one_line(verified.stderr)
    # The untouched log still verifies, cosignature and all.
    shutil.copy(pristine, project.audit_db)
    for suffix in ("-wal", "-shm"):
        project.audit_db.with_name(project.audit_db.name + suffix).unlink(missing_ok=True)
    assert report(project).first_error is None
    again = cli("audit", "verify", "-p", str(project.root), "--require-witness")
    assert again.returncode == 0, again.stderr


def test_a_replayed_old_cosignature_is_reported(project, log, witness, tmp_path):
    register(log, witness.url, witness.vkey)
    grow(log, 10)
    old = sign(log, project)
    old_line = cosignatures_for(project.audit_db, old)[0].line
    witness.stop()
    grow(log, 10, 10)
    newest = sign(log, project)
    log.close()
    pristine = tmp_path / "pristine.db"
    shutil.copy(project.audit_db, pristine)
    # Copy the witness's cosignature of size 10 onto the uncosigned newest checkpoint.
    conn = sqlite3.connect(project.audit_db)
    with conn:
        conn.execute("INSERT INTO cosignatures (origin, size, body, witness, line, received) VALUES (?, ?, ?, ?, ?, ?)",
                     (newest.origin, newest.size, newest.body(), witness.vkey, old_line, "2026-01-01T00:00:00+00:00"))
    conn.close()
    assert [c.status for c in cosignatures_for(project.audit_db, newest)] == ["bad-signature"]
    verified = cli("audit", "verify", "-p", str(project.root), "--require-witness")
    assert verified.returncode == 1
    assert "checkpoint #2 (size 20): the cosignature of witness workbench.local/witness/" in one_line(verified.stderr)
    assert "does not verify (it was copied from another checkpoint, forged or damaged)" in verified.stderr
    # The untouched log verifies (the old checkpoint is cosigned, the newest is not: --require-witness says so).
    shutil.copy(pristine, project.audit_db)
    assert cli("audit", "verify", "-p", str(project.root)).returncode == 0
    assert cli("audit", "verify", "-p", str(project.root), "--require-witness").returncode == 1


def test_a_rollback_to_an_older_copy_with_its_old_cosignature_is_reported(project, log, witness, tmp_path):
    register(log, witness.url, witness.vkey)
    grow(log, 10)
    sign(log, project)
    older = tmp_path / "older.db"
    log.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(project.audit_db, older)
    grow(log, 10, 10)
    sign(log, project)
    log.close()
    assert report(project).first_error is None
    for suffix in ("-wal", "-shm"):
        project.audit_db.with_name(project.audit_db.name + suffix).unlink(missing_ok=True)
    shutil.copy(older, project.audit_db)  # signed, cosigned, and 10 entries short
    found = report(project)
    assert "cosign size 20" in (found.first_error or "") and "rolled back or truncated" in found.first_error
    verified = cli("audit", "verify", "-p", str(project.root))
    assert verified.returncode == 1 and one_line(verified.stderr)


def test_a_witness_answering_with_a_bad_signature_is_reported_and_nothing_is_stored(project, log, witness):
    liar = LyingWitness(witness.url).start()
    try:
        register(log, liar.url, witness.vkey)  # the right key: only the answers are bad
        grow(log, 6)
        before = digest(project.audit_db)
        cp = sign(log, project)
        with Registry.open() as registry:
            refusals = registry.refusals(log.origin)
            assert [q.size for q in registry.queued(log.origin)] == [6]  # kept: a later answer may be good
        assert refusals and "its cosignature does not verify against the registered key" in refusals[-1][3]
        assert stored_cosignatures(project.audit_db) == []
        assert digest(project.audit_db) != before  # the checkpoint itself was written...
        after_sign = digest(project.audit_db)
        pushed = cli("audit", "witness", "push", "-p", str(project.root))
        assert pushed.returncode == 1
        assert "does not verify against the registered key: nothing was stored" in one_line(pushed.stderr)
        assert digest(project.audit_db) == after_sign  # ...and the failed push changed nothing
        assert cosignatures_for(project.audit_db, cp) == []
        assert cli("audit", "verify", "-p", str(project.root)).returncode == 0
        assert cli("audit", "verify", "-p", str(project.root), "--require-witness").returncode == 1
    finally:
        liar.stop()


def test_a_cosignature_by_another_key_than_registered_is_not_taken(project, log, witness, tmp_path):
    impostor = WitnessProcess(tmp_path / "impostor-data").start()  # its own key, never registered
    impostor.stop()
    name = witness.vkey.split("+", 1)[0]
    other_key = WitnessKey(name, WitnessKey.parse(impostor.vkey).public)  # same name, another key
    register(log, witness.url, other_key.vkey())
    grow(log, 3)
    sign(log, project)
    with Registry.open() as registry:
        assert "holds no cosignature from the registered key" in registry.refusals(log.origin)[-1][3]
    assert stored_cosignatures(project.audit_db) == []


def test_a_witness_url_that_does_not_answer_is_one_line_and_the_log_is_unchanged(project, log, witness):
    grow(log, 4)
    sign(log, project)
    log.close()
    before = digest(project.audit_db)
    dead = f"http://127.0.0.1:{free_port()}"
    added = cli("audit", "witness", "add", "-p", str(project.root), dead, witness.vkey)
    assert added.returncode == 0  # registered: an offline laptop registers now and pushes later
    assert "did not answer" in one_line(added.stderr) and "queued" in added.stderr
    pushed = cli("audit", "witness", "push", "-p", str(project.root))
    assert pushed.returncode == 1
    line = one_line(pushed.stderr)
    assert line.startswith("workbench: error: witness ") and "did not answer" in line
    assert digest(project.audit_db) == before
    # A witness that accepts the connection and never answers: bounded by the timeout, still one line.
    silent = SilentServer()
    try:
        cli("audit", "witness", "remove", "-p", str(project.root), dead)
        assert cli("audit", "witness", "add", "-p", str(project.root), silent.url, witness.vkey, "--no-push").returncode == 0
        started = time.monotonic()
        hung = cli("audit", "witness", "push", "-p", str(project.root), WORKBENCH_WITNESS_TIMEOUT="1")
        assert time.monotonic() - started < 20
        assert hung.returncode == 1 and "no answer within 1 s" in one_line(hung.stderr)
    finally:
        silent.close()
    # One that answers a byte every 0.3 s, forever: the whole exchange is cut at three times the timeout.
    drip = DripServer()
    try:
        cli("audit", "witness", "remove", "-p", str(project.root), silent.url)
        assert cli("audit", "witness", "add", "-p", str(project.root), drip.url, witness.vkey, "--no-push").returncode == 0
        started = time.monotonic()
        dripped = cli("audit", "witness", "push", "-p", str(project.root), WORKBENCH_WITNESS_TIMEOUT="1")
        assert time.monotonic() - started < 20
        assert dripped.returncode == 1 and "no complete answer within 3 s" in one_line(dripped.stderr)
    finally:
        drip.close()
    assert digest(project.audit_db) == before
    assert cli("audit", "verify", "-p", str(project.root)).returncode == 0


def test_signing_goes_on_when_the_witness_is_unreachable(project, log, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WITNESS_TIMEOUT", "1")
    register(log, f"http://127.0.0.1:{free_port()}", WitnessKey("w.test", KeyStore(tmp_path / "k").signing_key()
                                                                 .public).vkey())
    grow(log, 3)
    started = time.monotonic()
    cp = sign(log, project)
    assert time.monotonic() - started < 5
    assert cp.size == 3 and log.verify().ok


@pytest.mark.parametrize("url, vkey, says", [
    ("ftp://witness", "VALID", "bad witness URL"),
    ("http://witness:99999", "VALID", "bad witness URL"),
    ("http://127.0.0.1:1", "not-a-key", "bad witness verifier key"),
    ("http://127.0.0.1:1", "w+deadbeef+AAAA", "bad witness verifier key"),
    ("http://127.0.0.1:1", "LOGKEY", "not of type 0x04 (a witness key)"),
])
def test_malformed_witness_url_or_key_is_one_line(project, log, url, vkey, says):
    valid = WitnessKey("w.test", KeyStore().signing_key().public).vkey()
    vkey = {"VALID": valid, "LOGKEY": log_vkey(log.origin, KeyStore().signing_key().public)}.get(vkey, vkey)
    added = cli("audit", "witness", "add", "-p", str(project.root), url, vkey)
    assert added.returncode == 2
    assert says in one_line(added.stderr)
    with Registry.open_existing() as registry:
        assert registry.witnesses(log.origin) == []


def test_a_corrupted_witness_registry_is_one_line_and_the_log_goes_on(project, log, witness):
    register(log, witness.url, witness.vkey)
    Registry.default_path().write_bytes(b"this is not a database\n" * 64)
    listed = cli("audit", "witness", "list", "-p", str(project.root))
    assert listed.returncode == 1
    assert "witness registry" in one_line(listed.stderr) and "cannot be read" in listed.stderr
    grow(log, 3)
    cp = sign(log, project)  # the hook fails quietly: signing is not stopped by a witness problem
    assert cp.size == 3 and log.verify().ok
    verified = cli("audit", "verify", "-p", str(project.root))
    assert verified.returncode == 0 and "witness registry cannot be read" in verified.stdout
