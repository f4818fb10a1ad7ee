"""`workbench audit ...`: exit codes, one-line errors, export and offline verification."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import pytest
from conftest import event

from workbench.audit import AuditLog
from workbench.cli import main


def cli(capsys, *args):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def fill(project, n=12, every=5, sessions=("s1", "s2")):
    log = AuditLog.open(project)
    log.checkpoint_every = every
    for i in range(n):
        log.append(event(i, session=sessions[i * len(sessions) // n]))
    log.close()


@pytest.fixture
def filled(project):
    fill(project)
    return project


def test_verify_ok_prints_count_root_and_fingerprint(filled, capsys):
    code, out, err = cli(capsys, "audit", "verify", "-p", str(filled.root))
    assert code == 0, err
    with AuditLog.open(filled, readonly=True) as log:
        fingerprint = log.key_info().fingerprint
        root = log.latest_checkpoint().root_hex
    assert out.startswith("ok: 12 entries") and root in out and fingerprint in out


def test_verify_names_the_bad_entry_and_exits_1(filled, capsys):
    conn = sqlite3.connect(filled.audit_db)
    with conn:
        conn.execute("UPDATE entries SET payload = replace(payload, 'MARKER_0004', 'MARKER_9999')")
    conn.close()
    code, out, err = cli(capsys, "audit", "verify", "-p", str(filled.root))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "entry 4" in err


def test_prove_prints_a_verified_path(filled, capsys):
    code, out, _ = cli(capsys, "audit", "prove", "3", "-p", str(filled.root))
    assert code == 0 and "entry 3 in tree of size 12" in out and "verified: yes" in out
    code, _, err = cli(capsys, "audit", "prove", "99", "-p", str(filled.root))
    assert code == 1 and "no entry 99" in err


def test_checkpoint_prints_the_signed_note_and_verify_accepts_it_later(filled, capsys, tmp_path):
    code, note, _ = cli(capsys, "audit", "checkpoint", "-p", str(filled.root))
    assert code == 0 and note.startswith(f"workbench.local/audit/{filled.id}\n12\n") and "\n\n\u2014 " in note
    kept = tmp_path / "kept.note"
    kept.write_text(note, encoding="utf-8")
    fill(filled, n=4, sessions=("s3",))
    code, out, err = cli(capsys, "audit", "verify", "-p", str(filled.root), "--checkpoint", str(kept))
    assert code == 0, err
    assert "consistent with your checkpoint of size 12" in out
    code, key_pem, _ = cli(capsys, "audit", "key", "--pem")
    pem = tmp_path / "signer.pem"
    pem.write_text(key_pem, encoding="utf-8")
    code, out, err = cli(capsys, "audit", "verify", "-p", str(filled.root), "--pubkey", str(pem))
    assert code == 0, err


def test_full_and_filtered_exports_verify_offline(filled, capsys, tmp_path):
    full, part = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    assert cli(capsys, "audit", "export", "-p", str(filled.root), "--format", "jsonl", "--out", str(full))[0] == 0
    assert cli(capsys, "audit", "export", "-p", str(filled.root), "--session", "s2", "--out", str(part))[0] == 0
    records = [json.loads(line) for line in full.read_text().splitlines()]
    assert records[0]["type"] == "header" and records[0]["complete"] and records[0]["keys"]
    assert sum(r["type"] == "entry" for r in records) == 12
    assert any(r["type"] == "checkpoint" for r in records)
    filtered = [json.loads(line) for line in part.read_text().splitlines()]
    assert {r["session_id"] for r in filtered if r["type"] == "entry"} == {"s2"}
    assert all("inclusion" in r for r in filtered if r["type"] == "entry")
    filled.audit_db.unlink()  # offline: no project needed
    for path in (full, part):
        code, out, err = cli(capsys, "audit", "verify", "--export", str(path))
        assert code == 0, err
        assert "ok:" in out and records[0]["fingerprint"] in out


@pytest.mark.parametrize("field,value", [("payload", {"marker": "forged"}), ("time", "2001-01-01T00:00:00+00:00"),
                                         ("inclusion", [])])
def test_a_tampered_export_fails(filled, capsys, tmp_path, field, value):
    path = tmp_path / "x.jsonl"
    cli(capsys, "audit", "export", "-p", str(filled.root), "--session", "s1", "--out", str(path))
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if '"type":"entry"' in line)
    record = json.loads(lines[index])
    record[field] = value
    lines[index] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    code, _, err = cli(capsys, "audit", "verify", "--export", str(path))
    assert code == 1 and f"export line {index + 1}" in err


def test_export_to_stdout_and_bad_times(filled, capsys):
    code, out, _ = cli(capsys, "audit", "export", "-p", str(filled.root), "--since", "2000-01-01",
                       "--until", "2100-01-01T00:00:00Z")
    assert code == 0 and out.count('"type":"entry"') == 12
    code, _, err = cli(capsys, "audit", "export", "-p", str(filled.root), "--since", "yesterday-ish")
    assert code == 2 and "--since" in err and err.count("\n") == 1


def test_missing_log_non_project_and_corrupt_file(project, capsys, tmp_path):
    code, _, err = cli(capsys, "audit", "verify", "-p", str(project.root))
    assert code == 1 and "no audit log" in err and not project.audit_db.exists()
    code, _, err = cli(capsys, "audit", "verify", "-p", str(tmp_path))
    assert code == 2 and "not a Workbench project" in err
    project.audit_db.write_bytes(b"garbage" * 50)
    for command in (["verify"], ["export"], ["prove", "0"], ["checkpoint"]):
        code, _, err = cli(capsys, "audit", *command, "-p", str(project.root))
        assert code == 1 and "not a readable audit log" in err and err.count("\n") == 1
    assert project.audit_db.read_bytes() == b"garbage" * 50


def test_real_command_line_one_line_error(filled, workbench_cmd):
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    ok = subprocess.run([*workbench_cmd, "audit", "verify", "-p", str(filled.root)], capture_output=True,
                        text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    conn = sqlite3.connect(filled.audit_db)
    with conn:
        conn.execute("DELETE FROM entries WHERE seq = 2")
    conn.close()
    bad = subprocess.run([*workbench_cmd, "audit", "verify", "-p", str(filled.root)], capture_output=True,
                         text=True, env=env, timeout=60)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == ["workbench: error: entry 2 is missing: the log jumps from entry 1 to 3"]
