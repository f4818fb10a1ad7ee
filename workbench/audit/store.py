"""The audit log's SQLite file: schema, transactions, and append-only reads and writes.

Why these choices:

* WAL journal: a reader (the TUI) sees only committed transactions, and every entry is one row
  inserted in one transaction, so nobody ever sees half an entry; a SIGKILL mid-append loses at most
  the uncommitted transaction.
* ``synchronous=NORMAL`` for ordinary commits (atomic and safe against a process crash, cheap), and an
  explicit fsync of the WAL and database files after a checkpoint is committed, so every signed
  checkpoint, and all entries under it, survive a power cut.
* Writers use ``BEGIN IMMEDIATE`` and read the head *inside* the transaction, so two processes
  appending to one log (CLI ``exec`` while the TUI is open) still chain correctly.
* Rows are only ever inserted: this package has no statement that changes or removes a row.
  (No triggers either: an attacker with the file drops them; tamper evidence comes from hashes and
  signatures, not from SQLite.)

Tables: ``meta`` (format, origin), ``entries`` (one row per event; ``seq`` is the 0-based Merkle leaf
index; ``payload`` is readable canonical JSON text; ``prev`` and ``hash`` are 32-byte blobs),
``checkpoints`` (signed notes, plus the compact range at that size so a writer can resume without
rehashing the log) and ``keys`` (public keys that signed checkpoints, with rotation records).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.audit.errors import AuditError
from workbench.wal import enable_wal

FORMAT = "workbench-audit/1"
GENESIS = bytes(32)  # the `prev` of entry 0
ENTRY_COLUMNS = "seq, time, kind, session_id, actor, user, event_id, payload, prev, hash"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    session_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    user TEXT NOT NULL,
    event_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_session ON entries (session_id, seq);
CREATE INDEX IF NOT EXISTS entries_by_time ON entries (time);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    time TEXT NOT NULL,
    note TEXT NOT NULL,
    frontier BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    fingerprint TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    added TEXT NOT NULL,
    rotation TEXT
);
"""


class AuditStore:
    """One connection to an audit database; thread-safe through a lock the caller may share."""

    def __init__(self, path: Path, create: bool = True, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.lock = threading.RLock()
        self._depth = 0
        self._durable = False
        self.transaction = 0  # counts write transactions begun on this connection
        self.on_rollback: list[Any] = []
        self.created = False
        if not self.path.exists():
            if not create or readonly:
                raise AuditError(f"no audit log at {self.path}", "nothing has been recorded in this project yet")
            if not self.path.parent.is_dir():
                raise AuditError(f"cannot create the audit log: {self.path.parent} is not a folder")
        try:
            if readonly:
                uri = f"{self.path.absolute().as_uri()}?mode=ro"
                self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30,
                                            check_same_thread=False)
            else:
                self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                            check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                mode = enable_wal(lambda sql: str(self.conn.execute(sql).fetchone()[0]), (sqlite3.OperationalError,))
                if str(mode).lower() != "wal":
                    raise AuditError(f"cannot switch {self.path} to WAL mode (got {mode})")
                self.conn.execute("PRAGMA synchronous = NORMAL")
            self._check_or_create(create and not readonly)
        except sqlite3.DatabaseError as exc:
            raise AuditError(f"{self.path} is not a readable audit log: {exc}",
                             "restore it from a backup; nothing was changed") from exc

    def _check_or_create(self, create: bool) -> None:
        tables = {row[0] for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and create:
            with self.write():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
            self.created = True
            return
        missing = {"meta", "entries", "checkpoints", "keys"} - tables
        if missing:
            raise AuditError(f"{self.path} is not a Workbench audit log (missing tables: {', '.join(sorted(missing))})",
                             "restore it from a backup; nothing was changed")
        fmt = self.meta("format")
        if fmt != FORMAT:
            raise AuditError(f"{self.path} has an unknown audit format {fmt!r} (this Workbench reads {FORMAT})")

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    # --- transactions -----------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE); nested uses join the outer one."""
        if self.readonly:
            raise AuditError("the audit log was opened read-only")
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self.transaction += 1
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self._depth = 0
                self._durable = False
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                for callback in self.on_rollback:
                    callback()
                raise
            self._depth = 0
            self.conn.execute("COMMIT")
            if self._durable:
                self._durable = False
                self._fsync()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every query inside sees the same committed state (WAL snapshot)."""
        with self.lock:
            if self.conn.in_transaction:
                yield
                return
            self.conn.execute("BEGIN")
            try:
                yield
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")

    @property
    def in_write(self) -> bool:
        return self._depth > 0

    def make_durable(self) -> None:
        """Fsync the files once the current transaction commits (used for checkpoints)."""
        if self._depth:
            self._durable = True
        else:
            self._fsync()

    def _fsync(self) -> None:
        for path in (self.path.with_name(self.path.name + "-wal"), self.path):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # --- reads and inserts ------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def add_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def head(self) -> tuple[int, bytes]:
        """(number of entries, hash of the last entry) as the database says now."""
        row = self.conn.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0] + 1, bytes(row[1])) if row else (0, GENESIS)

    def insert_entry(self, row: tuple[Any, ...]) -> None:
        self.conn.execute(f"INSERT INTO entries ({ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def leaf_hashes(self, start: int = 0, end: int | None = None) -> list[bytes]:
        if end is None:
            rows = self.conn.execute("SELECT hash FROM entries WHERE seq >= ? ORDER BY seq", (start,))
        else:
            rows = self.conn.execute("SELECT hash FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq",
                                     (start, end))
        return [bytes(r[0]) for r in rows]

    def entry_rows(self, where: str = "", params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self.conn.execute(f"SELECT {ENTRY_COLUMNS} FROM entries {where} ORDER BY seq", params)

    def insert_checkpoint(self, size: int, time: str, note: str, frontier: bytes) -> int:
        cursor = self.conn.execute("INSERT INTO checkpoints (size, time, note, frontier) VALUES (?, ?, ?, ?)",
                                   (size, time, note, frontier))
        return int(cursor.lastrowid or 0)

    def checkpoint_rows(self) -> list[tuple[int, int, str, str, bytes]]:
        return [(r[0], r[1], r[2], r[3], bytes(r[4])) for r in self.conn.execute(
            "SELECT id, size, time, note, frontier FROM checkpoints ORDER BY id")]

    def latest_checkpoint_row(self) -> tuple[int, int, str, str, bytes] | None:
        row = self.conn.execute(
            "SELECT id, size, time, note, frontier FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
        return (row[0], row[1], row[2], row[3], bytes(row[4])) if row else None

    def key_rows(self) -> list[tuple[str, str, str, str | None]]:
        return list(self.conn.execute("SELECT fingerprint, public_key, added, rotation FROM keys ORDER BY added"))

    def insert_key(self, fingerprint: str, public_key: str, added: str, rotation: str | None) -> None:
        self.conn.execute("INSERT OR IGNORE INTO keys (fingerprint, public_key, added, rotation) "
                          "VALUES (?, ?, ?, ?)", (fingerprint, public_key, added, rotation))
