"""The Ed25519 signing key of the audit log: where it lives, how it rotates, and doctor's keyring check.

Why here and not in the project: a key inside the project folder (or the sandbox) could be used by
whoever edits the log to re-sign it. The private key is created on first use and kept in the OS keyring
(`keyring`, service ``workbench``, entry ``audit-signing-key``, value: base64 of the 32-byte Ed25519
seed).

Fallback, explicit and documented: when no usable keyring backend exists (headless Linux without a
Secret Service, where `keyring` only has its *fail* backend), the key is kept in
``<user data dir>/audit-signing-key`` with mode 0600, and `KeyInfo.insecure_fallback` is True so that
`workbench doctor` and every report can warn. A plaintext `keyrings.alt` backend counts as insecure
too. The public history (rotations, below) lives in ``<user data dir>/audit-key-history.json``.

Rotation: `KeyStore.rotate` makes a new key and a *rotation record*: the statement
``workbench-audit-key-rotation\\n<old>\\n<new>\\n<time>\\n`` (keys in base64) signed by both keys. Old
public keys stay in every log that used them, with the record, so old checkpoints stay verifiable and
a verifier who trusts any key of the chain can trust the others.

The keys themselves and their public forms (fingerprint, vkey, PEM) are `workbench.audit.ed25519`.
"""

from __future__ import annotations

import binascii
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench import paths
from workbench.audit.ed25519 import ED25519_ALG, PublicKey, SigningKey, b64, unb64  # noqa: F401 - as callers know them
from workbench.audit.errors import SigningKeyError
from workbench.findings import Finding

SERVICE = "workbench"
KEY_ENTRY = "audit-signing-key"
KEY_FILE = "audit-signing-key"
HISTORY_FILE = "audit-key-history.json"
ROTATION_HEADER = "workbench-audit-key-rotation"


@dataclass(frozen=True)
class Rotation:
    """A rotation record: `old` handed over to `new`, signed by both."""

    old: PublicKey
    new: PublicKey
    time: str
    old_signature: bytes
    new_signature: bytes

    @staticmethod
    def statement(old: PublicKey, new: PublicKey, time: str) -> bytes:
        return f"{ROTATION_HEADER}\n{old.base64}\n{new.base64}\n{time}\n".encode("ascii")

    def valid(self) -> bool:
        message = self.statement(self.old, self.new, self.time)
        return self.old.verify(self.old_signature, message) and self.new.verify(self.new_signature, message)

    def to_dict(self) -> dict[str, str]:
        return {"old": self.old.base64, "new": self.new.base64, "time": self.time,
                "old_signature": b64(self.old_signature), "new_signature": b64(self.new_signature)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rotation:
        return cls(PublicKey(unb64(data["old"])), PublicKey(unb64(data["new"])), str(data["time"]),
                   unb64(data["old_signature"]), unb64(data["new_signature"]))


@dataclass(frozen=True)
class KeyInfo:
    """Where the signing key lives and what it is.

    backend: ``keyring:<backend class>`` or ``file:<path>``; insecure_fallback: True when the private key
    is not protected by an OS keyring (doctor and reports warn); reason: why the fallback was used.
    """

    fingerprint: str
    public_key: str  # base64 of the raw 32-byte key
    backend: str
    insecure_fallback: bool
    reason: str = ""

    def warning(self) -> str | None:
        if not self.insecure_fallback:
            return None
        return (f"the audit signing key is kept in a plain file ({self.backend.removeprefix('file:')}), "
                f"not an OS keyring{': ' + self.reason if self.reason else ''}")


_THREAD_LOCK = threading.Lock()


@contextmanager
def _creation_lock(data_dir: Path) -> Iterator[None]:
    """Serialise key creation between the threads of this process and between processes."""
    with _THREAD_LOCK:
        paths.ensure_dir(data_dir)
        fd = os.open(data_dir / ".audit-key.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def usable_keyring() -> tuple[Any | None, str]:
    """The keyring backend to use, or None and why not (the credential vault, workbench.network.secrets,
    asks the same question, so both fall back to their files on the same machines)."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception as exc:  # keyring missing or broken at import
        return None, f"keyring cannot be imported ({exc})"
    try:
        backend = keyring.get_keyring()
    except Exception as exc:
        return None, f"no keyring backend ({exc})"
    if isinstance(backend, fail.Keyring):
        return None, "no keyring backend is available"
    chained = getattr(backend, "backends", None)
    if chained is not None and not chained:
        return None, "no keyring backend is available"
    return backend, ""


def check(settings=None) -> list[Finding]:  # noqa: ANN001 - doctor passes the settings; the keyring needs none
    """Doctor's "keyring" finding: where the signing key lives (a file when there is no OS keyring)."""
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception as exc:  # noqa: BLE001 - a broken keyring is a warning with its fix
        return [Finding("keyring", "warn", f"keyring unusable: {exc}", "install a Secret Service (gnome-keyring)")]
    if isinstance(backend, fail.Keyring):
        return [Finding("keyring", "warn", "no OS keyring backend: the audit signing key lives in a 0600 file in "
                        "the user data folder instead", "install and unlock a Secret Service such as "
                        "gnome-keyring (apt-get install gnome-keyring)")]
    return [Finding("keyring", "ok", f"{type(backend).__module__}.{type(backend).__name__}")]


def _backend_name(backend: Any) -> str:
    return f"keyring:{type(backend).__module__}.{type(backend).__name__}"


def _plaintext_backend(backend: Any) -> bool:
    return type(backend).__module__.startswith("keyrings.alt")


class KeyStore:
    """Finds, creates and rotates this user's audit signing key."""

    def __init__(self, data_dir: Path | None = None, entry: str = KEY_ENTRY, file_name: str = KEY_FILE):
        # `entry` and `file_name` let another key (a witness's) be kept the same way beside this one.
        self.data_dir = data_dir or paths.user_data_dir()
        self.entry = entry
        self.file_name = file_name
        self._cached: tuple[SigningKey, KeyInfo] | None = None

    @property
    def key_file(self) -> Path:
        return self.data_dir / self.file_name

    @property
    def history_file(self) -> Path:
        return self.data_dir / HISTORY_FILE

    # --- loading ----------------------------------------------------------------------------------
    def load(self, create: bool = True) -> tuple[SigningKey, KeyInfo] | None:
        """The signing key and where it is; created on first use unless `create` is False.

        Creation is exclusive across threads and processes (a lock file in the data folder), and looks
        again once it holds the lock: two sessions starting at once must end up with ONE key, not two
        where the second silently replaces the first.
        """
        if self._cached is not None:
            return self._cached
        found, backend, reason = self._find()
        if found is None:
            if not create:
                return None
            with _creation_lock(self.data_dir):
                found, backend, reason = self._find()
                if found is None:
                    found = self._store(SigningKey.generate(), backend, reason)
        self._cached = found
        return found

    def _find(self) -> tuple[tuple[SigningKey, KeyInfo] | None, Any | None, str]:
        backend, reason = usable_keyring()
        if backend is not None:
            try:
                stored = backend.get_password(SERVICE, self.entry)
            except Exception as exc:  # a locked or broken keyring: fall back, and say why
                backend, reason = None, f"the keyring failed: {type(exc).__name__}: {exc}"
                stored = None
            if stored:
                key = self._decode(stored, _backend_name(backend))
                plain = _plaintext_backend(backend)
                return (key, self._info(key, _backend_name(backend), plain,
                                        "plaintext keyring backend" if plain else "")), backend, reason
        if self.key_file.exists():
            key = self._read_file()
            return (key, self._info(key, f"file:{self.key_file}", True,
                                    reason or "the key was created while no keyring was usable")), backend, reason
        return None, backend, reason

    def info(self, create: bool = True) -> KeyInfo | None:
        loaded = self.load(create=create)
        return loaded[1] if loaded else None

    def signing_key(self) -> SigningKey:
        loaded = self.load(create=True)
        assert loaded is not None
        return loaded[0]

    def _info(self, key: SigningKey, backend: str, insecure: bool, reason: str) -> KeyInfo:
        return KeyInfo(key.public.fingerprint, key.public.base64, backend, insecure, reason)

    def _decode(self, stored: str, where: str) -> SigningKey:
        try:
            seed = unb64(stored.strip())
            return SigningKey.from_seed(seed)
        except (binascii.Error, ValueError) as exc:
            raise SigningKeyError(f"the audit signing key in {where} is damaged",
                                  "restore it, or remove it to start a new key (old logs stay verifiable "
                                  "with their stored public key)") from exc

    def _read_file(self) -> SigningKey:
        try:
            stored = self.key_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise SigningKeyError(f"cannot read the audit signing key {self.key_file}: {exc}") from exc
        return self._decode(stored, str(self.key_file))

    def _store(self, key: SigningKey, backend: Any | None, reason: str) -> tuple[SigningKey, KeyInfo]:
        secret = b64(key.seed())
        if backend is not None:
            try:
                backend.set_password(SERVICE, self.entry, secret)
                name = _backend_name(backend)
                plain = _plaintext_backend(backend)
                return key, self._info(key, name, plain, "plaintext keyring backend" if plain else "")
            except Exception as exc:
                reason = f"the keyring refused the key: {type(exc).__name__}: {exc}"
        self._write_key_file(secret)
        return key, self._info(key, f"file:{self.key_file}", True, reason)

    def _write_key_file(self, secret: str) -> None:
        try:
            paths.ensure_dir(self.data_dir)
            tmp = self.key_file.with_name(f".{self.file_name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secret + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.key_file)
        except OSError as exc:
            raise SigningKeyError(f"cannot write the audit signing key {self.key_file}: "
                                  f"{exc.strerror or exc}") from exc

    # --- rotation ---------------------------------------------------------------------------------
    def history(self) -> list[Rotation]:
        """The rotation records of this user's keys, oldest first."""
        try:
            data = json.loads(self.history_file.read_text(encoding="utf-8"))
            return [Rotation.from_dict(item) for item in data.get("rotations", [])]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SigningKeyError(f"{self.history_file} is damaged: {exc}") from exc

    def known_keys(self) -> list[PublicKey]:
        """This user's current public key (if any) and every earlier one."""
        keys: list[PublicKey] = []
        for rotation in self.history():
            for key in (rotation.old, rotation.new):
                if key not in keys:
                    keys.append(key)
        loaded = self.load(create=False)
        if loaded and loaded[0].public not in keys:
            keys.append(loaded[0].public)
        return keys

    def rotate(self) -> Rotation:
        """Replace the signing key with a new one; returns the rotation record (also kept locally)."""
        old_key, old_info = self.load(create=True) or (None, None)
        assert old_key is not None and old_info is not None
        new_key = SigningKey.generate()
        when = datetime.now(UTC).isoformat(timespec="seconds")
        statement = Rotation.statement(old_key.public, new_key.public, when)
        rotation = Rotation(old_key.public, new_key.public, when, old_key.sign(statement),
                            new_key.sign(statement))
        history = [r.to_dict() for r in self.history()] + [rotation.to_dict()]
        paths.ensure_dir(self.data_dir)
        tmp = self.history_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rotations": history}, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.history_file)
        backend, reason = usable_keyring()
        if old_info.backend.startswith("file:"):
            backend = None
            reason = old_info.reason
        self._cached = None
        self._cached = self._store(new_key, backend, reason)
        return rotation
