"""Fixtures for the audit log tests: an isolated data folder and keyring, and small logs to attack."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from workbench.audit import AuditLog, KeyStore
from workbench.events import Event


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in a dict: the keyring code path without touching the user's keyring."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.secrets.pop((service, username), None)


@pytest.fixture(autouse=True)
def isolated_keys(tmp_path, monkeypatch):
    """Each test has its own data folder, and no real keyring (the fail backend) unless it asks."""
    data = tmp_path / "user-data"
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(data))
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield data
    keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring():
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend


def event(i: int, session: str = "s1", kind: str = "exec.finished", **payload) -> Event:
    return Event(kind=kind, session_id=session, actor="agent:test/tiny", user="user:tester",
                 payload={"marker": f"MARKER_{i:04d}", "code": f"print({i})", **payload})


def make_log(path: Path, n: int, every: int = 5, close: bool = True, sessions: int = 1) -> AuditLog | None:
    """A log of n entries at `path`, checkpointed every `every`; closed (final checkpoint) by default."""
    log = AuditLog.open_path(path, origin="test.local/audit/log", checkpoint_every=every, key_store=KeyStore())
    for i in range(n):
        log.append(event(i, session=f"s{i * sessions // max(n, 1)}"))
    if close:
        log.close()
        return None
    return log


def verify_path(path: Path):
    log = AuditLog.open_path(path, create=False, readonly=True)
    try:
        return log.verify()
    finally:
        log.close()


def sql(path: Path, statement: str, params: tuple = ()) -> None:
    """Change the file as an attacker would: plain sqlite3, no Workbench code."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(statement, params)
    conn.close()


@pytest.fixture
def log_path(tmp_path) -> Path:
    return tmp_path / "audit.db"
