"""Checkpoints as C2SP signed notes; the signing key in the keyring, in the file fallback, rotated."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import keyring
import pytest
from conftest import event, verify_path

from workbench.audit import AuditError, AuditLog, Checkpoint, KeyStore, PublicKey
from workbench.audit.keys import KEY_ENTRY, SERVICE, SigningKey


def test_note_text_follows_c2sp():
    key = SigningKey.generate()
    root = hashlib.sha256(b"root").digest()
    cp = Checkpoint.sign("example.com/log", 42, root, key)
    note = cp.to_note()
    body, sigs = note.split("\n\n")
    assert body == f"example.com/log\n42\n{base64.b64encode(root).decode()}"
    assert sigs.startswith("\u2014 example.com/log ") and sigs.endswith("\n")
    blob = base64.b64decode(sigs.split(" ")[2])
    keyhash = hashlib.sha256(b"example.com/log\n\x01" + key.public.raw).digest()[:4]
    assert blob[:4] == keyhash and len(blob) == 68
    parsed = Checkpoint.from_note(note)
    assert parsed == cp and parsed.verify([key.public])[0] == key.public
    assert parsed.verify([SigningKey.generate().public])[0] is None


@pytest.mark.parametrize("text", ["", "origin\n1\n", "origin\nx\nAAAA\n\n\u2014 a b\n", "o\n1\nnotbase64!\n\n\u2014 o AAAAAA==\n",
                                  "o\n1\n" + base64.b64encode(b"x" * 32).decode() + "\n\nno dash\n"])
def test_bad_notes_are_one_line_errors(text):
    with pytest.raises(AuditError):
        Checkpoint.from_note(text)


def test_public_key_forms_round_trip():
    key = SigningKey.generate().public
    assert PublicKey.parse(key.pem()) == key
    assert PublicKey.parse(key.base64) == key
    assert PublicKey.parse(key.vkey("workbench-audit")) == key
    with pytest.raises(ValueError):
        PublicKey.parse("not a key")


def test_keyring_backend_keeps_the_key(memory_keyring, isolated_keys):
    info = KeyStore().info()
    assert info.backend.startswith("keyring:") and "MemoryKeyring" in info.backend
    assert not info.insecure_fallback and info.warning() is None
    assert memory_keyring.secrets[(SERVICE, KEY_ENTRY)]
    assert not (isolated_keys / "audit-signing-key").exists()
    assert KeyStore().info().fingerprint == info.fingerprint  # found again, not re-created


def test_no_keyring_falls_back_to_a_0600_file(isolated_keys):
    info = KeyStore().info()
    path = isolated_keys / "audit-signing-key"
    assert info.backend == f"file:{path}"
    assert info.insecure_fallback and "no keyring" in info.reason
    assert "plain file" in info.warning()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyStore().info().fingerprint == info.fingerprint


def test_a_failing_keyring_falls_back_and_says_why(isolated_keys):
    class Broken(keyring.backend.KeyringBackend):
        priority = 1

        def get_password(self, service, username):
            raise keyring.errors.KeyringLocked("locked")

        def set_password(self, service, username, password):
            raise keyring.errors.PasswordSetError("no")

        def delete_password(self, service, username):
            pass

    keyring.set_keyring(Broken())
    info = KeyStore().info()
    assert info.insecure_fallback and "KeyringLocked" in info.reason


def test_damaged_key_is_a_one_line_error(memory_keyring):
    memory_keyring.secrets[(SERVICE, KEY_ENTRY)] = "%%%"
    with pytest.raises(AuditError, match="damaged"):
        KeyStore().info()


def test_rotation_keeps_old_checkpoints_verifiable(log_path, memory_keyring):
    log = AuditLog.open_path(log_path, origin="test.local/rot", checkpoint_every=3)
    for i in range(7):
        log.append(event(i))
    old = log.key_info().fingerprint
    new = log.rotate_key().fingerprint
    assert old != new
    for i in range(7, 12):
        log.append(event(i))
    log.close()
    result = verify_path(log_path)
    assert result.ok, result.first_error
    assert result.fingerprint == new
    known = KeyStore().known_keys()
    with AuditLog.open_path(log_path, readonly=True) as again:
        signers = {cp.verify(known)[0].fingerprint for cp in again.checkpoints()}
    assert signers == {old, new}
    # A reviewer who pinned only the old key still trusts the new one through the rotation record.
    pinned = [k for k in KeyStore().known_keys() if k.fingerprint == old]
    with AuditLog.open_path(log_path, readonly=True) as again:
        assert again.verify(pinned=pinned).ok


def _secret_service_parts() -> str | None:
    for tool in ("dbus-run-session", "gnome-keyring-daemon"):
        if shutil.which(tool) is None:
            return tool
    try:
        import secretstorage  # noqa: F401
    except ImportError:
        return "the secretstorage Python package"
    return None


def test_real_secret_service_keeps_the_key(tmp_path):
    missing = _secret_service_parts()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is missing (required in CI: see packaging/apt-test-packages.txt)")
        pytest.skip(f"needs {missing} for a real Secret Service")
    script = textwrap.dedent("""
        import keyring
        from workbench.audit import KeyStore
        first = KeyStore().info()
        second = KeyStore().info()
        assert first.backend.startswith("keyring:") and "SecretService" in first.backend, first.backend
        assert not first.insecure_fallback
        assert first.fingerprint == second.fingerprint
        assert keyring.get_password("workbench", "audit-signing-key")
        print("ok", first.backend)
    """)
    shell = f"echo pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null && {sys.executable} -c '{script}'"
    env = {**os.environ, "WORKBENCH_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("PYTHON_KEYRING_BACKEND", None)  # the suite pins the fail backend; this test is about the real one
    result = subprocess.run(["dbus-run-session", "--", "sh", "-c", shell], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "ok keyring:" in result.stdout
    assert not (tmp_path / "data" / "audit-signing-key").exists()
