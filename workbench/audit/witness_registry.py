"""This user's witness registry: which witnesses each log is pushed to, what each was last seen to
cosign, the push queue and the refusals (``<user data dir>/witnesses.db``, 0600, keyed by the log's origin).

Kept outside every project: whoever can rewrite a project's files could otherwise add a witness key of their
own and forge its cosignatures, or point pushes at a host of their choosing. `workbench.audit.witness`
pushes checkpoints with it; `workbench.audit.cosign` reads it to know which witness keys this user trusts.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from workbench import paths
from workbench.audit.checkpoint import Checkpoint
from workbench.audit.cosignature import WitnessKey
from workbench.audit.errors import AuditError

REGISTRY_FILE = "witnesses.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS witnesses (
    origin TEXT NOT NULL, vkey TEXT NOT NULL, url TEXT NOT NULL, added TEXT NOT NULL,
    PRIMARY KEY (origin, vkey));
CREATE TABLE IF NOT EXISTS known (
    origin TEXT NOT NULL, vkey TEXT NOT NULL, size INTEGER NOT NULL, root BLOB, line TEXT, time TEXT NOT NULL,
    PRIMARY KEY (origin, vkey));
CREATE TABLE IF NOT EXISTS queue (
    origin TEXT NOT NULL, vkey TEXT NOT NULL, size INTEGER NOT NULL, note TEXT NOT NULL, queued TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, next_try REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (origin, vkey, size));
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY, origin TEXT NOT NULL, vkey TEXT NOT NULL, size INTEGER NOT NULL,
    status INTEGER NOT NULL, reason TEXT NOT NULL, time TEXT NOT NULL);
"""


class WitnessError(AuditError):
    """A witness registration or push that cannot be done (exit 1)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- the registry --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Witness:
    origin: str
    key: WitnessKey
    url: str

    @property
    def name(self) -> str:
        return self.key.name


@dataclass(frozen=True)
class Known:
    """The last checkpoint this machine saw a witness cosign (root None: only its size is known, from a 409)."""

    origin: str
    vkey: str
    size: int
    root: bytes | None
    line: str | None
    time: str

    @property
    def name(self) -> str:
        return self.vkey.split("+", 1)[0]


@dataclass(frozen=True)
class Queued:
    origin: str
    vkey: str
    size: int
    note: str
    queued: str
    attempts: int
    last_error: str | None
    next_try: float


def check_url(url: str) -> str:
    """The witness's submission prefix, normalised; ValueError in one line when it is not an http(s) URL."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text[:80]!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{text[:80]!r} has no host")
    try:
        _ = parts.port  # urlsplit checks the port only when asked
    except ValueError as exc:
        raise ValueError(f"{text[:80]!r} has a bad port") from exc
    if parts.query or parts.fragment or any(c.isspace() or ord(c) < 0x20 for c in text):
        raise ValueError(f"{text[:80]!r} must be a plain URL prefix (no query, fragment or spaces)")
    return text.rstrip("/")


class Registry:
    """This user's witnesses, what each was last seen to cosign, the push queue and the refusals."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn
        self.lock = threading.RLock()

    @classmethod
    def default_path(cls) -> Path:
        return paths.user_data_dir() / REGISTRY_FILE

    @classmethod
    def open(cls, path: Path | None = None) -> Registry:
        """Open (creating, 0600) the registry; a damaged file is one line, never replaced."""
        path = path or cls.default_path()
        try:
            paths.ensure_dir(path.parent)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.executescript(SCHEMA)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise WitnessError(f"the witness registry {path} cannot be read: {exc}",
                               "move it aside to start a new one; the project's log is unchanged") from exc
        return cls(path, conn)

    @classmethod
    def open_existing(cls, path: Path | None = None) -> Registry:
        """Like `open`, but a user who never registered a witness gets an empty registry in memory."""
        path = path or cls.default_path()
        if not path.exists():
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            conn.executescript(SCHEMA)
            return cls(path, conn)
        return cls.open(path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self.lock:
            try:
                return self.conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise WitnessError(f"the witness registry {self.path} cannot be read: {exc}",
                                   "move it aside to start a new one; the project's log is unchanged") from exc

    # registrations
    def add(self, origin: str, url: str, key: WitnessKey) -> Witness:
        self._query("INSERT INTO witnesses (origin, vkey, url, added) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (origin, vkey) DO UPDATE SET url = excluded.url", (origin, key.vkey(), url, _now()))
        return Witness(origin, key, url)

    def remove(self, origin: str, which: str) -> list[Witness]:
        gone = [w for w in self.witnesses(origin) if which in (w.key.vkey(), w.name, w.url)]
        for w in gone:
            for table in ("witnesses", "queue", "known"):
                self._query(f"DELETE FROM {table} WHERE origin = ? AND vkey = ?", (origin, w.key.vkey()))
        return gone

    def witnesses(self, origin: str) -> list[Witness]:
        found = []
        for vkey, url in self._query("SELECT vkey, url FROM witnesses WHERE origin = ? ORDER BY added, vkey",
                                     (origin,)):
            try:
                found.append(Witness(origin, WitnessKey.parse(str(vkey)), str(url)))
            except ValueError:
                continue  # a row damaged by hand: skipped (its vkey no longer parses)
        return found

    # what each witness cosigned
    def known(self, origin: str, vkey: str | None = None) -> list[Known]:
        sql = "SELECT origin, vkey, size, root, line, time FROM known WHERE origin = ?"
        params: tuple[object, ...] = (origin,)
        if vkey is not None:
            sql, params = sql + " AND vkey = ?", (origin, vkey)
        return [Known(str(o), str(v), int(s), bytes(r) if r is not None else None, line, str(t))  # type: ignore[arg-type]
                for o, v, s, r, line, t in self._query(sql, params)]

    def set_known(self, origin: str, vkey: str, size: int, root: bytes | None, line: str | None) -> None:
        self._query("INSERT INTO known (origin, vkey, size, root, line, time) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (origin, vkey) DO UPDATE SET size = excluded.size, root = excluded.root, "
                    "line = excluded.line, time = excluded.time", (origin, vkey, size, root, line, _now()))

    # the queue
    def enqueue(self, origin: str, vkey: str, checkpoint: Checkpoint) -> None:
        self._query("INSERT OR IGNORE INTO queue (origin, vkey, size, note, queued) VALUES (?, ?, ?, ?, ?)",
                    (origin, vkey, checkpoint.size, checkpoint.to_note(), _now()))

    def queued(self, origin: str, vkey: str | None = None) -> list[Queued]:
        sql = "SELECT origin, vkey, size, note, queued, attempts, last_error, next_try FROM queue WHERE origin = ?"
        params: tuple[object, ...] = (origin,)
        if vkey is not None:
            sql, params = sql + " AND vkey = ?", (origin, vkey)
        return [Queued(*row) for row in self._query(sql + " ORDER BY size", params)]  # type: ignore[arg-type]

    def queued_count(self, origin: str) -> int:
        return int(self._query("SELECT COUNT(*) FROM queue WHERE origin = ?", (origin,))[0][0])  # type: ignore[arg-type]

    def dequeue(self, origin: str, vkey: str, up_to_size: int) -> None:
        self._query("DELETE FROM queue WHERE origin = ? AND vkey = ? AND size <= ?", (origin, vkey, up_to_size))

    def failed(self, item: Queued, error: str, wait: float) -> None:
        self._query("UPDATE queue SET attempts = attempts + 1, last_error = ?, next_try = ? "
                    "WHERE origin = ? AND vkey = ? AND size = ?",
                    (error, time.time() + wait, item.origin, item.vkey, item.size))

    def refuse(self, origin: str, vkey: str, size: int, status: int, reason: str) -> None:
        self._query("INSERT INTO refusals (origin, vkey, size, status, reason, time) VALUES (?, ?, ?, ?, ?, ?)",
                    (origin, vkey, size, status, reason, _now()))

    def refusals(self, origin: str) -> list[tuple[str, int, int, str, str]]:
        return [(str(v), int(s), int(st), str(r), str(t)) for v, s, st, r, t in self._query(  # type: ignore[arg-type]
            "SELECT vkey, size, status, reason, time FROM refusals WHERE origin = ? ORDER BY id", (origin,))]
