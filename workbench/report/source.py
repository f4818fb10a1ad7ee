"""Everything the report reads from the audit log, in one snapshot.

Why a snapshot: the report must show the log as it was at export time, and only the log (so the record
a reviewer sees is exactly what the user saw). We verify the whole log, read the selected entries, the
latest signed checkpoint and the key facts once, and never let a failure of one of them stop the
report: a log that does not verify, or cannot even be read past some point, still yields a report that
says so in red.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workbench.audit import AuditLog
from workbench.audit.store import AuditStore
from workbench.project import Project


@dataclass
class Verification:
    """The verification result at export time, flattened for display."""

    ok: bool
    entries: int
    root: str  # hex; "" when it could not be computed
    fingerprint: str
    checkpoints: int = 0
    signed_entries: int = 0
    error: str = ""  # one line: what failed, where
    warnings: list[str] = field(default_factory=list)
    witness: str = ""  # what this machine's witness state said (see workbench.audit.witness_state)
    vkey: str = ""  # the signer's C2SP verifier key


@dataclass
class KeyFacts:
    fingerprint: str = ""
    public_key: str = ""
    backend: str = ""
    insecure_fallback: bool = False
    warning: str = ""
    error: str = ""


@dataclass
class CheckpointFacts:
    note: str  # C2SP signed-note text
    size: int
    root: str  # hex
    time: str = ""


@dataclass
class Snapshot:
    origin: str
    log_size: int
    verification: Verification
    checkpoint: CheckpointFacts | None
    key: KeyFacts
    entries: list[Any]  # AuditEntry, in log order
    read_error: str = ""  # the entries could not all be read: why


def _one_line(exc: BaseException) -> str:
    one = getattr(exc, "one_line", None)
    if callable(one):
        return str(one())
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]


def read(project: Project, since: datetime | None = None, until: datetime | None = None,
         session: str | None = None) -> Snapshot:
    """Verify the project's audit log and read the selected entries; raises only if the log cannot open.

    The database is opened read-only here; `render_report` has signed a checkpoint over the head first
    where this machine's key may (`workbench.audit.head.sign_head`), so that nothing is exported unsigned.
    """
    store = AuditStore(project.audit_db, create=False, readonly=True)
    try:
        log = AuditLog(store, store.meta("origin") or "")
        return _read(log, since, until, session)
    finally:
        store.close()


def _read(log: AuditLog, since: datetime | None, until: datetime | None, session: str | None) -> Snapshot:
    try:
        result = log.verify()
        verification = Verification(bool(result.ok), int(result.entries or 0), str(result.root or ""),
                                    str(result.fingerprint or ""), int(getattr(result, "checkpoints", 0) or 0),
                                    int(getattr(result, "signed_entries", 0) or 0),
                                    "" if result.ok else str(result.first_error or "verification failed"),
                                    [str(w) for w in getattr(result, "warnings", []) or []],
                                    str(getattr(result, "witness", "") or ""), str(getattr(result, "vkey", "") or ""))
    except Exception as exc:  # the verifier itself broke: that is a failed verification too
        verification = Verification(False, 0, "", "", error=f"verification could not run: {_one_line(exc)}")

    checkpoint = None
    try:
        cp = log.latest_checkpoint()
        if cp is not None:
            checkpoint = CheckpointFacts(cp.to_note(), int(cp.size), cp.root.hex(), str(cp.time or ""))
    except Exception as exc:
        if not verification.error:
            verification.ok = False
            verification.error = f"the latest checkpoint cannot be read: {_one_line(exc)}"

    key = KeyFacts()
    try:
        info = log.key_store.info(create=False)
        if info is None:
            raise LookupError("this machine has no audit signing key (the log's own key is named above)")
        key = KeyFacts(info.fingerprint, info.public_key, info.backend, bool(info.insecure_fallback),
                       str(info.warning() or "") if hasattr(info, "warning") else "")
    except Exception as exc:
        key.error = _one_line(exc)

    entries: list[Any] = []
    read_error = ""
    try:
        for entry in log.entries(since=since, until=until, session=session):
            entries.append(entry)
    except Exception as exc:  # a row that no longer parses (tampering): show what we have, say so
        read_error = f"reading entries stopped after {len(entries)}: {_one_line(exc)}"
        if verification.ok:
            verification.ok = False
            verification.error = read_error

    try:
        size = log.size()
    except Exception:
        size = verification.entries
    return Snapshot(str(getattr(log, "origin", "")), int(size), verification, checkpoint, key, entries,
                    read_error)
