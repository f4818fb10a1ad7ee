"""Signing the log's head before it leaves the machine: `sign_head` and what it did (`HeadSigning`).

Nothing is exported unsigned where that can be helped: `workbench report` and `workbench audit export` call
`sign_head` first, and the report's banner says how many entries no signature covers when it could not.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from workbench.audit.checkpoint import Checkpoint
from workbench.audit.errors import AuditError
from workbench.audit.keys import KeyStore
from workbench.audit.log import AuditLog
from workbench.audit.store import AuditStore


@dataclass(frozen=True)
class HeadSigning:
    """What `sign_head` did: the log's size, how many entries a checkpoint now covers, and why not all."""

    size: int
    signed: int
    checkpoint: Checkpoint | None = None  # the checkpoint signed just now, if one was
    reason: str = ""  # one line: why the newest entries were left unsigned ("" when every entry is covered)
    witness_problem: str = ""  # signed, but not recorded in this machine's witness state: why

    @property
    def unsigned(self) -> int:
        return max(0, self.size - self.signed)

    def note(self) -> str:
        """One line for the user when entries were left unsigned, else ""."""
        if not self.unsigned:
            return ""
        return (f"the {self.unsigned} newest of {self.size} entries are covered by no signature: "
                f"{self.reason or 'they were not signed'}")


def sign_head(db_path: Path | str, key_store: KeyStore | None = None, project_root: Path | None = None,
              origin: str | None = None) -> HeadSigning:
    """Sign a checkpoint over the log's head before it is exported, when this machine's key may sign it.

    Nothing is exported unsigned where that can be helped: `workbench report` and `workbench audit export`
    call this first. The key "may sign" when it exists and is one of the keys that already signed this log
    (or an earlier key of this user's); a log with no checkpoint yet is signed with this user's key (as its
    next checkpoint would be). A log made on another machine, a missing or unreadable key, or a log file
    that cannot be written here leaves the head unsigned, and `reason` says which. Never raises for that.
    """
    key_store = key_store or KeyStore()
    path = Path(db_path)
    store = AuditStore(path, create=False, readonly=True)
    try:
        size = store.head()[0]
        latest = store.latest_checkpoint_row()
        signed = latest[1] if latest else 0
        log_keys = {str(row[0]) for row in store.key_rows()}
    finally:
        store.close()
    if signed >= size:
        return HeadSigning(size, signed)
    try:
        if log_keys:
            mine = {key.fingerprint for key in key_store.known_keys()}
            if not mine:
                return HeadSigning(size, signed, reason="this machine has no audit signing key")
            if not mine & log_keys:
                return HeadSigning(size, signed, reason="this machine's signing key is not one of the keys that "
                                                         "signed this log (it was made elsewhere)")
        with AuditLog.open_path(path, origin=origin, create=False, key_store=key_store,
                                project_root=project_root) as log:
            cp = log.checkpoint()
            problem = log.witness_problem or ""
    except AuditError as exc:
        return HeadSigning(size, signed, reason=f"it could not be signed here: {exc.one_line()}")
    except (OSError, sqlite3.Error) as exc:
        return HeadSigning(size, signed, reason=f"it could not be signed here: {type(exc).__name__}: {exc}")
    return HeadSigning(max(size, cp.size), cp.size, cp, witness_problem=problem)
