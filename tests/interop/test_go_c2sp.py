"""Interop: a real export, checked by Go's reference C2SP code, which shares no code with Workbench.

`c2spverify/main.go` uses golang.org/x/mod/sumdb/note (signed notes) and sumdb/tlog (RFC 6962 trees and
proofs), from Debian's golang-go and golang-golang-x-mod-dev, built offline in GOPATH mode
(`packaging/setup-test-tools.sh` installs both). The binary is cached under the user cache folder, keyed
by the hash of its source. The export comes from `workbench audit export`, the inclusion proof is a
C2SP tlog-proof@v1 file from `workbench audit prove --out`, and the checkpoints are cosigned by a real witness in its own process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.audit.witness_procs import WORKBENCH, WitnessProcess
from tests.conftest import need
from workbench import paths
from workbench.audit import AuditLog, KeyStore
from workbench.audit.cosign import WitnessKey, cosignatures_for, log_vkey
from workbench.audit.witness import Registry
from workbench.events import Event
from workbench.project import Project

pytestmark = pytest.mark.timeout(300)

SOURCE = Path(__file__).with_name("c2spverify") / "main.go"
GOPATH = Path("/usr/share/gocode")
XMOD = GOPATH / "src" / "golang.org" / "x" / "mod" / "sumdb"


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch):
    """The log's key in the test's data folder (the 0600 file), here and in the CLI it runs."""
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    yield
    keyring.set_keyring(previous)


@pytest.fixture(scope="module")
def c2spverify() -> Path:
    go = shutil.which("go")
    need(go is not None and (XMOD / "note").is_dir() and (XMOD / "tlog").is_dir(),
         "Go and golang.org/x/mod (apt: golang-go golang-golang-x-mod-dev; packaging/setup-test-tools.sh)")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    cache = paths.user_cache_dir() / "interop"
    binary = cache / f"c2spverify-{digest}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GO111MODULE="off", GOPATH=str(GOPATH), GOCACHE=str(cache / "go-build"),
                   CGO_ENABLED="0")
        tmp = binary.with_name(binary.name + f".{os.getpid()}.tmp")
        built = subprocess.run([go, "build", "-o", str(tmp), SOURCE.name], cwd=SOURCE.parent, env=env,
                               capture_output=True, text=True, timeout=240)
        assert built.returncode == 0, built.stderr
        os.replace(tmp, binary)
    return binary


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(WORKBENCH), *args], capture_output=True, text=True, env=dict(os.environ), timeout=120)


def go(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def exported(tmp_path, c2spverify):
    """A project whose 23 entries were signed in 5 checkpoints, each cosigned by a witness; its export
    and the tlog-proof file `audit prove --out` writes for entry 7 (the checkpoint with its cosignature)."""
    project = Project.init(tmp_path / "proj")
    settings = project.settings().audit
    origin = settings.origin or f"workbench.local/audit/{project.id}"
    log = AuditLog.open_path(project.audit_db, origin=origin, checkpoint_every=5, key_store=KeyStore())
    witness = WitnessProcess(tmp_path / "witness-data", allow=(log_vkey(log.origin, KeyStore().signing_key().public),))
    witness.start()
    try:
        with Registry.open() as registry:
            registry.add(log.origin, witness.url, WitnessKey.parse(witness.vkey))
        for i in range(23):  # every fifth entry signs a checkpoint, which goes to the witness as it is signed
            log.append(Event(kind="exec.finished", session_id=f"s{i // 10}", actor="agent:test", user="user:t",
                             payload={"i": i, "text": f"line\u2028{i} \u00e9\u4e2d \"quoted\""}))
        log.close()
    finally:
        witness.stop()
    reopened = AuditLog.open_path(project.audit_db, create=False, readonly=True)
    checkpoints = reopened.checkpoints()
    reopened.close()
    assert [cp.size for cp in checkpoints] == [5, 10, 15, 20, 23]
    for cp in checkpoints:
        assert [c.status for c in cosignatures_for(project.audit_db, cp)] == ["verified"]
    export = tmp_path / "export.jsonl"
    done = cli("audit", "export", "-p", str(project.root), "--out", str(export))
    assert done.returncode == 0, done.stderr
    proof_file = tmp_path / "entry7.tlog-proof"
    made = cli("audit", "prove", "-p", str(project.root), "7", "--out", str(proof_file))
    assert made.returncode == 0, made.stderr
    return {"export": export, "proof": proof_file, "witness": witness.vkey, "origin": origin,
            "vkey": log_vkey(origin, KeyStore().signing_key().public)}


def test_go_verifies_signatures_consistency_inclusion_and_cosignatures(exported, c2spverify):
    result = go(c2spverify, "-export", str(exported["export"]), "-proof", str(exported["proof"]),
                "-witness", exported["witness"])
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    # Go's note.NewEd25519VerifierKey names the key as Workbench does: the same vkey, computed independently.
    assert f"go: 5 checkpoints signed by {exported['vkey']}" in line
    assert "tree rebuilt from 23 leaves, 5 consistency proofs checked" in line
    assert "entry 7 included in size 23 (checkpoint cosigned by 1)" in line


def test_go_rejects_what_does_not_verify(exported, c2spverify, tmp_path):
    export_lines = exported["export"].read_text(encoding="utf-8").split("\n")

    def variant(name: str, change) -> Path:
        records = [json.loads(line) if line.strip() else None for line in export_lines]
        change(records)
        out = tmp_path / name
        out.write_text("\n".join(json.dumps(r, ensure_ascii=False) if r is not None else "" for r in records),
                       encoding="utf-8")
        return out

    def flip_consistency(records):
        cp = next(r for r in records if r and r["type"] == "checkpoint" and r["consistency"])
        cp["consistency"][0] = "00" * 32

    def change_leaf(records):
        entry = next(r for r in records if r and r["type"] == "entry" and r["seq"] == 3)
        entry["hash"] = "11" * 32

    def other_key(records):
        records[0]["keys"] = [{"public_key": base64.b64encode(bytes(range(32))).decode()}]

    for name, change, says in (("consistency.jsonl", flip_consistency, "tlog.CheckTree"),
                               ("leaf.jsonl", change_leaf, "entry 4: its prev"),
                               ("key.jsonl", other_key, "note.Open")):
        result = go(c2spverify, "-export", str(variant(name, change)))
        assert result.returncode == 1 and says in result.stderr, (name, result.stderr)
    # A cosignature with one bit flipped: note.Open rejects the whole note (signed-note: a known key's
    # signature that fails to verify).
    text = exported["proof"].read_text(encoding="utf-8")
    line = next(line for line in text.split("\n") if line.startswith("\u2014 workbench.local/witness/"))
    name, sig = line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    bad = tmp_path / "bad.tlog-proof"
    bad.write_text(text.replace(line, f"{name} {base64.b64encode(bytes(raw)).decode()}"), encoding="utf-8")
    result = go(c2spverify, "-export", str(exported["export"]), "-proof", str(bad), "-witness", exported["witness"])
    assert result.returncode == 1 and "invalid signature" in result.stderr
    # The same proof for another entry does not verify.
    moved = tmp_path / "moved.tlog-proof"
    moved.write_text(text.replace("index 7\n", "index 6\n"), encoding="utf-8")
    result = go(c2spverify, "-export", str(exported["export"]), "-proof", str(moved))
    assert result.returncode == 1 and "tlog.CheckRecord" in result.stderr
