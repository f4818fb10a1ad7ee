"""An export carries each checkpoint's witness cosignatures, and `verify --export` checks them.

A real `workbench witness serve` runs in its own process on loopback and cosigns the project's
checkpoints as they are signed. The export's checkpoint notes then hold the cosignature lines (as a
tlog-proof file does), so `workbench audit verify --export FILE --require-witness` works offline: on the
machine that registered the witness, and on a reviewer's given the witness key with --witness. A forged,
replayed or removed cosignature is caught, each in one line.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.audit.conftest import event
from tests.audit.witness_procs import WORKBENCH, WitnessProcess
from workbench.audit import AuditLog, KeyStore
from workbench.audit.cosign import WitnessKey, cosignatures_for, log_vkey
from workbench.audit.export import verify_export
from workbench.audit.witness import Registry
from workbench.project import Project

pytestmark = pytest.mark.timeout(180)


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", **env)
    return subprocess.run([str(WORKBENCH), *args], capture_output=True, text=True, env=full, timeout=60)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    return lines[0]


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rewrite(path: Path, out: Path, change) -> Path:
    found = records(path)
    change(found)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in found), encoding="utf-8")
    return out


def cosignature_lines(note: str) -> list[str]:
    """The note's signature lines after the log's own (the first): the witnesses' cosignatures."""
    signatures = note[note.rindex("\n\n") + 2:].splitlines(keepends=True)
    return signatures[1:]


@pytest.fixture
def cosigned_project(tmp_path):
    """A project whose witness cosigned every checkpoint, and the witness (still running)."""
    project = Project.init(tmp_path / "proj")
    log = AuditLog.open(project, key_store=KeyStore())
    witness = WitnessProcess(tmp_path / "witness-data", allow=(log_vkey(log.origin, KeyStore().signing_key().public),))
    witness.start()
    try:
        with Registry.open() as registry:
            registry.add(log.origin, witness.url, WitnessKey.parse(witness.vkey))
        for i in range(12):
            log.append(event(i, session=f"s{i // 6}"))
            if i in (4, 9):
                log.checkpoint()
        log.close()
        yield project, witness
    finally:
        witness.stop()


def test_an_export_carries_the_cosignatures_and_require_witness_checks_them(cosigned_project, tmp_path):
    project, witness = cosigned_project
    export = tmp_path / "export.jsonl"
    done = cli("audit", "export", "-p", str(project.root), "--out", str(export))  # signs the head (size 12) first
    assert done.returncode == 0, done.stderr
    checkpoints = [r for r in records(export) if r["type"] == "checkpoint"]
    assert [r["note"].split("\n")[1] for r in checkpoints] == ["5", "10", "12"]
    with AuditLog.open(project, readonly=True) as log:
        stored = log.checkpoints()
    for record, cp in zip(checkpoints, stored, strict=True):
        # the note as the log signed it, then the witness's line: the one the log holds for that checkpoint
        assert record["note"].startswith(cp.to_note())
        assert cosignature_lines(record["note"]) == [c.line for c in cosignatures_for(project.audit_db, cp)]
        assert record["cosigners"] == [witness.vkey]
    # On this machine (the witness is registered): every checkpoint cosigned, --require-witness passes.
    checked = verify_export(export)
    assert checked.ok, checked.first_error
    assert checked.cosignatures.newest_cosigned
    assert sorted(checked.cosignatures.by_checkpoint) == [5, 10, 12]
    verified = cli("audit", "verify", "--export", str(export), "--require-witness")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("ok: 12 entries")
    assert "newest checkpoint #3 (size 12) cosigned by workbench.local/witness/" in verified.stdout
    assert "checkpoint size 10: cosigned by" in verified.stdout and "checkpoint size 5: cosigned by" in verified.stdout
    # A filtered export carries them too.
    part = tmp_path / "part.jsonl"
    assert cli("audit", "export", "-p", str(project.root), "--session", "s1", "--out", str(part)).returncode == 0
    assert cli("audit", "verify", "--export", str(part), "--require-witness").returncode == 0
    # A reviewer's machine never registered the witness: the cosignature is good but by nobody trusted
    # there, so --require-witness refuses in one line, until the reviewer names the witness key.
    reviewer = tmp_path / "reviewer-data"
    reviewer.mkdir(mode=0o700)
    plain = cli("audit", "verify", "--export", str(export), WORKBENCH_DATA_DIR=str(reviewer))
    assert plain.returncode == 0, plain.stderr
    assert "key not registered here" in plain.stdout
    required = cli("audit", "verify", "--export", str(export), "--require-witness", WORKBENCH_DATA_DIR=str(reviewer))
    assert required.returncode == 1
    assert "--require-witness: checkpoint #3 (size 12) has no cosignature from a registered witness" in \
        one_line(required.stderr)
    named = cli("audit", "verify", "--export", str(export), "--require-witness", "--witness", witness.vkey,
                WORKBENCH_DATA_DIR=str(reviewer))
    assert named.returncode == 0, named.stderr
    assert "newest checkpoint #3 (size 12) cosigned by workbench.local/witness/" in named.stdout
    assert "key not registered here" not in named.stdout
    bad_key = cli("audit", "verify", "--export", str(export), "--witness", "not-a-key", WORKBENCH_DATA_DIR=str(reviewer))
    assert bad_key.returncode == 2 and "bad witness verifier key" in one_line(bad_key.stderr)


def test_a_forged_replayed_or_removed_cosignature_in_an_export_is_caught(cosigned_project, tmp_path):
    project, witness = cosigned_project
    export = tmp_path / "export.jsonl"
    assert cli("audit", "export", "-p", str(project.root), "--out", str(export)).returncode == 0

    def head(found: list[dict]) -> dict:
        return [r for r in found if r["type"] == "checkpoint"][-1]

    def flip_bit(found):
        record = head(found)
        line = cosignature_lines(record["note"])[0]
        name, data = line.rstrip("\n").rsplit(" ", 1)
        raw = bytearray(base64.b64decode(data))
        raw[-1] ^= 1
        record["note"] = record["note"].replace(line, f"{name} {base64.b64encode(bytes(raw)).decode()}\n")

    def replay_older(found):
        older = [r for r in found if r["type"] == "checkpoint"][0]
        record = head(found)
        record["note"] = record["note"].replace(cosignature_lines(record["note"])[0],
                                                cosignature_lines(older["note"])[0])

    def remove(found):
        record = head(found)
        record["note"] = record["note"].replace(cosignature_lines(record["note"])[0], "")
        record["cosigners"] = []

    for name, change in (("forged", flip_bit), ("replayed", replay_older)):
        path = rewrite(export, tmp_path / f"{name}.jsonl", change)
        failed = cli("audit", "verify", "--export", str(path))
        assert failed.returncode == 1, (name, failed.stdout)
        assert "checkpoint #3 (size 12): the cosignature of witness workbench.local/witness/" in \
            one_line(failed.stderr), name
        assert "does not verify (it was copied from another checkpoint, forged or damaged)" in failed.stderr
    # The log's own signature is untouched, so the export still verifies; only the witness evidence is gone.
    removed = rewrite(export, tmp_path / "removed.jsonl", remove)
    assert cli("audit", "verify", "--export", str(removed)).returncode == 0
    required = cli("audit", "verify", "--export", str(removed), "--require-witness")
    assert required.returncode == 1 and "has no cosignature from a registered witness" in one_line(required.stderr)
    # Listing another key as the cosigner changes nothing: the registered key decides.
    impostor = WitnessKey(witness.vkey.split("+", 1)[0], KeyStore(tmp_path / "other").signing_key().public)
    relisted = rewrite(export, tmp_path / "relisted.jsonl",
                       lambda found: head(found).update(cosigners=[impostor.vkey()]))
    assert cli("audit", "verify", "--export", str(relisted), "--require-witness").returncode == 0
    # The untouched export still verifies, cosignatures and all.
    assert cli("audit", "verify", "--export", str(export), "--require-witness").returncode == 0


def test_a_newest_checkpoint_signed_while_the_witness_was_down_fails_require_witness(cosigned_project, tmp_path,
                                                                                     monkeypatch):
    project, witness = cosigned_project
    witness.stop()
    monkeypatch.setenv("WORKBENCH_WITNESS_TIMEOUT", "1")
    log = AuditLog.open(project, key_store=KeyStore())
    log.append(event(12))
    log.close()  # signs size 13; the push to the witness is queued
    export = tmp_path / "export.jsonl"
    done = cli("audit", "export", "-p", str(project.root), "--out", str(export))
    assert done.returncode == 0, done.stderr
    assert cosignature_lines([r for r in records(export) if r["type"] == "checkpoint"][-1]["note"]) == []
    plain = cli("audit", "verify", "--export", str(export))
    assert plain.returncode == 0 and "newest checkpoint #4 (size 13) has no cosignature" in plain.stdout
    assert "checkpoint size 12: cosigned by" in plain.stdout
    required = cli("audit", "verify", "--export", str(export), "--require-witness")
    assert required.returncode == 1
    assert "--require-witness: checkpoint #4 (size 13) has no cosignature" in one_line(required.stderr)
