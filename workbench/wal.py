"""Switching an SQLite database to WAL mode, safely when several connections open it at once.

SQLite answers `PRAGMA journal_mode=WAL` with "database is locked" at once, without waiting through the busy
timeout, when another connection is switching the same new database at that moment. The TUI opens the
schedule store from two threads at start, and a test caught one of them failing (1 start in about 30). So
the switch is retried for a while, and skipped when the database is already in WAL mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable

TIMEOUT = 30.0  # seconds, as the connections' own busy timeout


def enable_wal(execute: Callable[[str], str], busy: tuple[type[BaseException], ...],
               timeout: float = TIMEOUT) -> str:
    """Put the database in WAL mode; return the mode SQLite reports. `execute(sql)` runs one statement and
    returns its first value; `busy` are the driver's exceptions for a locked database."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            mode = execute("PRAGMA journal_mode")
            return mode if mode.lower() == "wal" else execute("PRAGMA journal_mode=WAL")
        except busy as exc:
            if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
