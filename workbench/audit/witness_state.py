"""This machine's memory of the checkpoints it signed: the per-user witness state.

Why: a signature proves only what it covers. Once checkpoints can be deleted, or the whole database put
back from an older copy, the log's own signatures cannot tell; anyone who can write the file can rewrite
an entry, recompute the chain and delete the checkpoints that no longer match. So every checkpoint
Workbench signs is also recorded here, outside the project, in a file only this user can read (like the
Go checksum database client, which remembers the newest tree it saw), and `verify` checks the log against
it. A log verified on a machine that never signed it (a reviewer's) has nothing to compare with, and
the verifier says so.

The file is ``<user data dir>/witness-state.db`` (SQLite, mode 0600, one row per signed checkpoint:
origin, size, root, the note text, when and in which file it was signed), keyed by the log's origin. Rows
are only inserted. A damaged file is never repaired or replaced here: it is reported in one line, and the
project's log is never touched by anything this module does.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workbench import paths
from workbench.audit.checkpoint import Checkpoint
from workbench.audit.errors import AuditError

STATE_FILE = "witness-state.db"
FORMAT = "workbench-witness-state/1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    db_path TEXT NOT NULL,
    PRIMARY KEY (origin, size, root)
);
"""


class WitnessStateError(AuditError):
    """The witness state file cannot be read or written (one line; the project's log is unchanged)."""


@dataclass(frozen=True)
class Seen:
    """A checkpoint this machine signed and recorded."""

    origin: str
    size: int
    root: bytes
    note: str
    signed_at: str
    db_path: str

    def describe(self) -> str:
        """How messages name it: ``checkpoint size 48 with root ab12cd34ef56…``."""
        return f"checkpoint size {self.size} with root {self.root.hex()[:12]}\u2026"

    def where(self) -> str:
        return f"signed {self.signed_at[:19].replace('T', ' ')} UTC in {self.db_path}"


def _key(db_path: Path | str) -> str:
    return str(Path(db_path).absolute())


def default_path() -> Path:
    return paths.user_data_dir() / STATE_FILE


def _damaged(path: Path, exc: BaseException) -> WitnessStateError:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return WitnessStateError(f"the witness state {path} is damaged or unreadable ({reason})",
                             "move it aside to start afresh (this machine then forgets which checkpoints it "
                             "signed); the project's log is unchanged")


class WitnessState:
    """The per-user witness state at `path` (default: in the user data folder)."""

    _lock = threading.Lock()  # one writer at a time in this process; SQLite serialises processes

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else default_path()

    # --- writing ----------------------------------------------------------------------------------
    def record(self, checkpoint: Checkpoint, db_path: Path | str) -> None:
        """Remember that this machine signed `checkpoint` of the log in `db_path`."""
        signed_at = checkpoint.time or datetime.now(UTC).isoformat(timespec="microseconds")
        with self._lock:
            conn = self._open(create=True)
            try:
                with conn:
                    conn.execute("INSERT OR IGNORE INTO seen (origin, size, root, note, signed_at, db_path) "
                                 "VALUES (?, ?, ?, ?, ?, ?)",
                                 (checkpoint.origin, checkpoint.size, checkpoint.root, checkpoint.to_note(),
                                  signed_at, _key(db_path)))
            except sqlite3.DatabaseError as exc:
                raise _damaged(self.path, exc) from exc
            finally:
                conn.close()

    # --- reading ----------------------------------------------------------------------------------
    # Evidence binds the file it was signed in. A project folder copied with `cp -a` carries the same log
    # (same origin) and may go on signing on its own: that copy is a fork, and holding the original to the
    # copy's later checkpoints (or the copy to the original's) would fail an untouched log. Putting an older
    # copy of the database back, deleting its checkpoints or rewriting it all happen in the same file, and
    # are caught. A log moved to another path has no evidence there, and verify says it was never signed here.
    def seen(self, origin: str, db_path: Path | str | None = None) -> list[Seen]:
        """Every checkpoint of `origin` this machine recorded (in the log file `db_path`, when given), oldest
        size first ([] if none, or no file)."""
        if db_path is None:
            return self._select("WHERE origin = ? ORDER BY size, signed_at", (origin,))
        return self._select("WHERE origin = ? AND db_path = ? ORDER BY size, signed_at", (origin, _key(db_path)))

    def newest(self, origin: str, db_path: Path | str | None = None) -> list[Seen]:
        """The checkpoints of the largest size this machine recorded for `origin` (in `db_path`, when given;
        more than one: a fork)."""
        if db_path is None:
            return self._select("WHERE origin = ? AND size = (SELECT MAX(size) FROM seen WHERE origin = ?) "
                                "ORDER BY signed_at", (origin, origin))
        key = _key(db_path)
        return self._select("WHERE origin = ? AND db_path = ? AND size = (SELECT MAX(size) FROM seen WHERE "
                            "origin = ? AND db_path = ?) ORDER BY signed_at", (origin, key, origin, key))

    def _select(self, where: str, params: tuple[object, ...]) -> list[Seen]:
        try:
            if self.path.stat().st_size == 0:  # absent, or created a moment ago by a first signer
                return []
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _damaged(self.path, exc) from exc
        conn = self._open(create=False)
        try:
            rows = conn.execute(f"SELECT origin, size, root, note, signed_at, db_path FROM seen {where}",
                                params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from exc
        finally:
            conn.close()
        found = []
        for origin_, size, root, note, signed_at, db_path in rows:
            if not (isinstance(size, int) and size >= 0 and isinstance(root, bytes) and len(root) == 32
                    and isinstance(note, str) and isinstance(signed_at, str) and isinstance(db_path, str)):
                raise _damaged(self.path, ValueError(f"a row for size {size!r} is malformed"))
            found.append(Seen(origin_, size, root, note, signed_at, db_path))
        return found

    # --- the file ---------------------------------------------------------------------------------
    def _open(self, create: bool) -> sqlite3.Connection:
        path = self.path
        try:
            if create:
                paths.ensure_dir(path.parent)
                if not path.exists():
                    # Created 0600 before SQLite opens it: the rows say which logs this user keeps.
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
                elif path.stat().st_mode & 0o077:
                    os.chmod(path, 0o600)
                conn = sqlite3.connect(path, timeout=10, isolation_level=None)
            else:
                # Read-write (never create) where we may: a writer killed mid-insert leaves a hot journal
                # that only a writable connection can roll back before reading.
                mode = "rw" if os.access(path, os.W_OK) else "ro"
                conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode={mode}", uri=True, timeout=10,
                                       isolation_level=None)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise _damaged(path, exc) from exc
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if create and not tables:
                # One transaction, so a second process never sees the tables without the format row.
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                tables = {"meta", "seen"}
            if not {"meta", "seen"} <= tables:
                raise sqlite3.DatabaseError("it is not a Workbench witness state (tables missing)")
            fmt = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if not fmt or fmt[0] != FORMAT:
                raise sqlite3.DatabaseError(f"unknown format {fmt[0] if fmt else None!r}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _damaged(path, exc) from exc
        return conn
