"""Witness cosignatures (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``) and where the log keeps them.

A cosignature is a signed-note signature line a witness adds to one of our checkpoints::

    — <witness name> base64(key ID || u64 big-endian timestamp || Ed25519 signature)

The key ID is SHA-256(<name> || "\\n" || 0x04 || public key)[:4] (0x04: the timestamped Ed25519
cosignature type), and the signature covers ``cosignature/v1\\ntime <timestamp>\\n`` followed by the
checkpoint's note text (its body lines, without signature lines). It says: "at this time, the largest
tree I have seen for this origin, consistent with everything before, has this root". A witness's public
key travels as a vkey ``<name>+<hex key ID>+base64(0x04 || key)``.

Storage: cosignatures the witnesses returned are kept in the project's ``audit.db``, in a table this
module creates (``cosignatures``), so a copy of the project carries them to a reviewer. Only a cosignature
that verified against the witness's registered key is ever written there; a failed witness operation
writes nothing. Which witness keys to *trust* is not taken from the project (whoever rewrites the log can
rewrite that table too): it is this user's registry of witnesses (`workbench.audit.witness_registry`), or
keys a caller passes. The cosignature format itself (keys, lines, signing) is `workbench.audit.cosignature`.

`cosignatures_for` answers "who cosigned this checkpoint"; `witness_report` checks every stored
cosignature, and what this machine recorded about each witness, against the log's checkpoints.
"""

from __future__ import annotations

import binascii
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.audit.checkpoint import Checkpoint
from workbench.audit.cosignature import (  # noqa: F401 - the format's names, as callers know them
    COSIGNATURE_ALG,
    COSIGNATURE_HEADER,
    FUTURE_SLACK_S,
    MAX_TIMESTAMP,
    Cosignature,
    WitnessKey,
    check_key_name,
    cosign,
    key_id,
    log_vkey,
    note_body,
    parse_vkey,
    signature_lines,
    signed_message,
)
from workbench.audit.keys import unb64

if TYPE_CHECKING:
    from workbench.audit.store import AuditStore

TABLE = """
CREATE TABLE IF NOT EXISTS cosignatures (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    body TEXT NOT NULL,
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    received TEXT NOT NULL,
    UNIQUE (body, line)
)
"""


# --- storage in audit.db -------------------------------------------------------------------------
def _connect(source: Path | str | AuditStore | sqlite3.Connection,
             readonly: bool = True) -> tuple[sqlite3.Connection, bool]:
    """A connection to the log file, and whether we opened it (and so must close it)."""
    if isinstance(source, sqlite3.Connection):
        return source, False
    conn = getattr(source, "conn", None)
    if isinstance(conn, sqlite3.Connection):
        return conn, False
    path = Path(source)  # type: ignore[arg-type]
    if readonly:
        return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5), True
    return sqlite3.connect(path, timeout=5, isolation_level=None), True


def _has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cosignatures'").fetchone() \
        is not None


def store_cosignature(db_path: Path, checkpoint_note: str, witness: WitnessKey, cosignature: Cosignature) -> bool:
    """Keep a verified cosignature in the log file; False if it was already there.

    Raises ValueError (and writes nothing) if it does not verify: only good evidence goes into the log.
    """
    body = note_body(checkpoint_note)
    if not witness.verify(cosignature, body):
        raise ValueError(f"the cosignature of {witness.name} does not verify")
    cp = Checkpoint.from_note(checkpoint_note)
    conn, _ = _connect(db_path, readonly=False)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(TABLE)
            cursor = conn.execute(
                "INSERT OR IGNORE INTO cosignatures (origin, size, body, witness, line, received) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (cp.origin, cp.size, body, witness.vkey(), cosignature.line(),
                 datetime.now(UTC).isoformat(timespec="seconds")))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return cursor.rowcount > 0
    finally:
        conn.close()


@dataclass(frozen=True)
class StoredCosignature:
    """A row of the log's cosignatures table, as stored (nothing checked yet)."""

    origin: str
    size: int
    body: str
    witness: str  # the witness's vkey as stored beside it
    line: str
    received: str


def stored_cosignatures(source: Path | str | AuditStore | sqlite3.Connection,
                        size: int | None = None) -> list[StoredCosignature]:
    conn, opened = _connect(source)
    try:
        if not _has_table(conn):
            return []
        sql = "SELECT origin, size, body, witness, line, received FROM cosignatures"
        rows = conn.execute(sql + (" WHERE size = ? ORDER BY id" if size is not None else " ORDER BY id"),
                            (size,) if size is not None else ()).fetchall()
        return [StoredCosignature(*(str(v) if i != 1 else int(v) for i, v in enumerate(row))) for row in rows]
    except sqlite3.DatabaseError:
        return []
    finally:
        if opened:
            conn.close()


@dataclass(frozen=True)
class Cosigned:
    """One cosignature on one checkpoint, checked.

    status: ``verified`` (a good signature by a witness this user registered or the caller trusts),
    ``unregistered`` (a good signature by a witness key this machine does not know: compare its vkey
    with the witness's published one), ``bad-signature`` (it does not verify over this checkpoint: forged,
    damaged, or copied from another checkpoint) or ``malformed``.
    """

    name: str
    vkey: str
    timestamp: int
    status: str
    line: str

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(min(self.timestamp, 253402300799), UTC)


def trusted_witness_keys(origin: str) -> list[WitnessKey]:
    """The witness keys this user registered for the log `origin` (none when nothing is registered)."""
    from workbench.audit.witness_registry import Registry

    try:
        return [w.key for w in Registry.open_existing().witnesses(origin)]
    except Exception:  # noqa: BLE001 - an unreadable registry trusts nobody; witness commands say why
        return []


def check_stored(row: StoredCosignature, body: str, trusted: Sequence[WitnessKey]) -> Cosigned:
    try:
        cosignature = Cosignature.from_line(row.line)
        witness = WitnessKey.parse(row.witness)
    except ValueError:
        return Cosigned(row.line[2:].split(" ", 1)[0][:60], row.witness, 0, "malformed", row.line)
    if not witness.verify(cosignature, body):
        status = "bad-signature"
    elif cosignature.timestamp > time.time() + FUTURE_SLACK_S:
        status = "bad-signature"  # a timestamp from the future: not a statement any witness made yet
    else:
        status = "verified" if witness in trusted else "unregistered"
    return Cosigned(cosignature.name, witness.vkey(), cosignature.timestamp, status, row.line)


def cosignatures_for(source: Path | str | AuditStore | sqlite3.Connection, checkpoint: Checkpoint,
                     trusted: Sequence[WitnessKey] | None = None) -> list[Cosigned]:
    """The cosignatures stored in the log for exactly this checkpoint (same note text), each checked.

    `trusted`: the witness keys to accept; by default the ones this user registered for the log's origin.
    """
    keys = list(trusted) if trusted is not None else trusted_witness_keys(checkpoint.origin)
    body = checkpoint.body()
    return [check_stored(row, body, keys) for row in stored_cosignatures(source, checkpoint.size)
            if row.body == body and row.origin == checkpoint.origin]


def note_cosignatures(note: str, trusted: Sequence[WitnessKey] | None = None) -> list[Cosigned]:
    """The witness cosignatures among a checkpoint note's signature lines (a tlog-proof's note), checked.

    A line no trusted witness key claims (by name and key ID) is ``unknown`` (possibly the log's own
    signature); one a trusted key claims is ``verified`` or ``bad-signature``. Default keys: this user's
    registered witnesses for the note's origin.
    """
    cp = Checkpoint.from_note(note)
    keys = list(trusted) if trusted is not None else trusted_witness_keys(cp.origin)
    body = note_body(note)
    found = []
    for sig in cp.signatures:
        line = sig.line()
        try:
            cosignature = Cosignature.from_line(line)
        except ValueError:
            continue  # not shaped like a cosignature: the log's own signature, or another kind
        claimed = [k for k in keys if k.name == cosignature.name and k.key_id == cosignature.key_id]
        if not claimed:
            found.append(Cosigned(cosignature.name, "", cosignature.timestamp, "unknown", line))
            continue
        good = claimed[0].verify(cosignature, body) and cosignature.timestamp <= time.time() + FUTURE_SLACK_S
        found.append(Cosigned(cosignature.name, claimed[0].vkey(), cosignature.timestamp,
                              "verified" if good else "bad-signature", line))
    return found


def cosigned_note(checkpoint: Checkpoint, cosignatures: Iterable[Cosigned]) -> str:
    """The checkpoint note with the verified cosignature lines appended (for proofs and exports)."""
    lines = [c.line for c in cosignatures if c.status in ("verified", "unregistered")]
    return checkpoint.to_note() + "".join(lines)


# --- the whole log -------------------------------------------------------------------------------
@dataclass
class WitnessReport:
    """What the witnesses say about a log. `first_error` is one line, or None when nothing contradicts it."""

    by_checkpoint: dict[int, list[Cosigned]] = field(default_factory=dict)  # checkpoint size -> cosignatures
    newest: Checkpoint | None = None
    registered: int = 0
    queued: int = 0
    first_error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def newest_cosigned(self) -> bool:
        return self.newest is not None and any(c.verified for c in self.by_checkpoint.get(self.newest.size, []))

    def lines(self, limit: int = 8) -> list[str]:
        """What `audit verify` prints: the newest checkpoint's state, then the cosigned checkpoints, newest first."""
        out = []
        if self.newest is not None:
            found = self.by_checkpoint.get(self.newest.size, [])
            if found:
                out.append(f"witnesses: newest {self.newest.label()} cosigned by {_names(found)}")
            else:
                extra = f" ({self.queued} push(es) queued)" if self.queued else ""
                who = f"{self.registered} witness(es) registered{extra}" if self.registered else "no witness registered"
                out.append(f"witnesses: newest {self.newest.label()} has no cosignature; {who}")
        older = [(size, found) for size, found in sorted(self.by_checkpoint.items(), reverse=True)
                 if found and (self.newest is None or size != self.newest.size)]
        for size, found in older[:limit]:
            out.append(f"  checkpoint size {size}: cosigned by {_names(found)}")
        if len(older) > limit:
            out.append(f"  ... and {len(older) - limit} earlier cosigned checkpoint(s)")
        return out


def _names(found: list[Cosigned]) -> str:
    parts = []
    for c in found:
        when = c.time.strftime("%Y-%m-%d %H:%M:%SZ")
        note = {"verified": "", "unregistered": ", key not registered here"}.get(c.status, f", {c.status}")
        parts.append(f"{c.name} ({when}{note})")
    return ", ".join(parts)


def witness_report(source: Path | str | AuditStore | sqlite3.Connection, checkpoints: Sequence[Checkpoint],
                   origin: str, trusted: Sequence[WitnessKey] | None = None,
                   recorded: Iterable[Any] | None = None) -> WitnessReport:
    """Check the log's stored cosignatures, and what this machine recorded of each witness, against
    `checkpoints` (the log's checkpoints, already verified by their signatures and roots).

    Errors (the first one becomes `first_error`): a cosignature that does not verify over the checkpoint it
    is stored for (replayed from another checkpoint, forged or damaged); a witness that cosigned a
    checkpoint whose root the log no longer has (rewritten after it was cosigned); a witness that cosigned
    a larger size than the log now has (rolled back or truncated).
    `recorded`: this machine's record of each witness's last cosigned checkpoint (`witness.Known` rows);
    by default read from the registry.
    """
    from workbench.audit import witness_registry

    keys = list(trusted) if trusted is not None else trusted_witness_keys(origin)
    report = WitnessReport(newest=checkpoints[-1] if checkpoints else None)
    by_size = {cp.size: cp for cp in checkpoints}
    newest_size = checkpoints[-1].size if checkpoints else 0
    errors: list[str] = []
    for row in stored_cosignatures(source):
        if row.origin != origin:
            errors.append(f"a cosignature stored in the log is for another log ({row.origin[:80]!r})")
            continue
        cp = by_size.get(row.size)
        checked = check_stored(row, row.body, keys)
        who = checked.name
        if checked.status in ("malformed", "bad-signature"):
            where = cp.label() if cp is not None else f"checkpoint size {row.size}"
            errors.append(f"{where}: the cosignature of witness {who} does not verify (it was copied from another "
                          "checkpoint, forged or damaged)")
            continue
        if cp is None:
            if row.size > newest_size:
                errors.append(f"witness {who} cosigned size {row.size}, but the log's newest checkpoint is size "
                              f"{newest_size}: the log was rolled back or truncated")
            else:
                errors.append(f"witness {who} cosigned a checkpoint of size {row.size} that the log no longer has: "
                              "its checkpoints were deleted or rewritten")
            continue
        if row.body != cp.body():
            errors.append(f"{cp.label()}: witness {who} cosigned root {_root_of(row.body)}, the log's is "
                          f"{cp.root_hex[:12]}…: the log was rewritten after it was cosigned")
            continue
        report.by_checkpoint.setdefault(row.size, []).append(checked)
    try:
        registry = witness_registry.Registry.open_existing()
        rows = list(recorded) if recorded is not None else registry.known(origin)
        report.registered = len(registry.witnesses(origin))
        report.queued = registry.queued_count(origin)
    except Exception as exc:  # noqa: BLE001 - an unreadable registry is a warning, the log may still be fine
        rows = list(recorded or [])
        report.warnings.append(f"this machine's witness registry cannot be read: {exc}")
    for known in rows:
        if known.root is None:
            continue
        cp = by_size.get(known.size)
        label = f"this machine saw witness {known.name} cosign size {known.size} with root {known.root.hex()[:12]}…"
        if known.size > newest_size:
            errors.append(f"{label}; the log's newest checkpoint is size {newest_size}: it was rolled back or truncated")
        elif cp is None:
            errors.append(f"{label}; the log has no checkpoint of that size any more: its checkpoints were deleted "
                          "or rewritten")
        elif cp.root != known.root:
            errors.append(f"{label}; the log's checkpoint of that size has root {cp.root_hex[:12]}…: the log was "
                          "rewritten after it was cosigned")
        elif not any(c.vkey == known.vkey for c in report.by_checkpoint.get(known.size, [])):
            report.warnings.append(f"the log lacks witness {known.name}'s cosignature on size {known.size} that this "
                                   "machine received (it was removed, or not stored yet: workbench audit witness push)")
    report.first_error = errors[0] if errors else None
    return report


def _root_of(body: str) -> str:
    lines = body.split("\n")
    try:
        return unb64(lines[2]).hex()[:12] + "…"
    except (IndexError, binascii.Error, ValueError, UnicodeEncodeError):
        return "(unreadable)"
