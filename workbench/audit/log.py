"""`AuditLog`: events in, signed checkpoints out.

It subscribes to the event bus (the audit log only *consumes* events), appends each event as one entry,
keeps the Merkle tree's compact range in memory so an append costs O(1) hashes, and signs a checkpoint
every `checkpoint_every` entries, at the end of each session (``session.finished``) and on `close`.

Sequence numbers are 0-based: entry ``seq`` is leaf ``seq`` of the Merkle tree, and a checkpoint of size
n covers entries 0..n-1.

Long because `AuditLog` is the one writer of ``audit.db``: appending, checkpointing, logging keys and
announcing to witnesses share its lock and transaction, and the chain's invariants are reviewed in one place.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.audit import hooks, merkle
from workbench.audit.canonical import entry_leaf_data, payload_text, utf8_text
from workbench.audit.checkpoint import Checkpoint, check_origin
from workbench.audit.errors import AuditError
from workbench.audit.keys import KeyInfo, KeyStore
from workbench.audit.store import GENESIS, AuditStore
from workbench.audit.witness_state import WitnessState
from workbench.events import SESSION_FINISHED, Event, EventBus

if TYPE_CHECKING:
    from workbench.audit.verify import VerifyResult
    from workbench.project import Project

DEFAULT_CHECKPOINT_EVERY = 256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditEntry:
    """One entry as stored. `hash` is the hex RFC 6962 leaf hash of its canonical header."""

    seq: int
    time: datetime
    kind: str
    session_id: str
    actor: str
    user: str
    payload: dict[str, Any]
    hash: str
    event_id: str = ""
    prev: str = ""

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> AuditEntry:
        seq, time, kind, session_id, actor, user, event_id, payload, prev, digest = row
        try:
            data = json.loads(payload)
        except ValueError:
            data = {"$unreadable": payload}
        return cls(seq, datetime.fromisoformat(time), kind, session_id, actor, user, data, bytes(digest).hex(),
                   event_id, bytes(prev).hex())


@dataclass(frozen=True)
class SessionSummary:
    id: str
    first_time: datetime
    last_time: datetime
    entries: int
    actors: tuple[str, ...]


def default_origin(project_id: str) -> str:
    return f"workbench.local/audit/{project_id}"


def iso_utc(moment: datetime) -> str:
    """The stored time form: UTC, microseconds, ``+00:00`` (sorts as text)."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class AuditLog:
    """The signed, append-only audit log of one project."""

    def __init__(self, store: AuditStore, origin: str, checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
                 key_store: KeyStore | None = None, project_root: Path | None = None,
                 witness_state: WitnessState | None = None):
        self.store = store
        # The project folder the hooks are told about: given by `open`, else the folder holding .workbench/.
        if project_root is None and store.path.parent.name == ".workbench":
            project_root = store.path.parent.parent
        self.project_root = project_root
        self.witness_state = witness_state or WitnessState()
        self.witness_problem: str | None = None  # the last failure to record a checkpoint in the witness state
        self._signed: list[Checkpoint] = []  # signed in the open transaction; announced once it commits
        self.origin = origin
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.key_store = key_store or KeyStore()
        self._tree: merkle.CompactRange | None = None
        self._head = GENESIS
        self._last_checkpoint_size = 0
        self._synced = -1  # the transaction in which the head was last read
        self._keys_logged: set[str] = set()
        self._closed = False
        store.on_rollback.append(self._forget)

    # --- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, project: Project, create: bool = True, key_store: KeyStore | None = None,
             readonly: bool = False) -> AuditLog:
        """The log at the project's ``.workbench/audit.db`` (created on first use unless `create` is False).

        `readonly` opens it for reading and verifying only (the CLI's verify, prove and export).
        """
        settings = project.settings().audit
        origin = settings.origin or default_origin(project.id)
        return cls.open_path(project.audit_db, origin=origin, checkpoint_every=settings.checkpoint_every,
                             create=create, key_store=key_store, readonly=readonly, project_root=project.root)

    @classmethod
    def open_path(cls, db_path: Path | str, origin: str | None = None,
                  checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY, create: bool = True,
                  key_store: KeyStore | None = None, readonly: bool = False,
                  project_root: Path | None = None) -> AuditLog:
        """The log in `db_path`; a new log takes `origin` (default: a fresh ``workbench.local/audit/<uuid>``)."""
        store = AuditStore(Path(db_path), create=create and not readonly, readonly=readonly)
        stored = store.meta("origin")
        if stored is None:
            if not store.created:
                store.close()
                raise AuditError(f"{db_path} has no log origin: it is damaged", "restore it from a backup")
            stored = origin or default_origin(uuid.uuid4().hex)
            check_origin(stored)
            with store.write():
                store.add_meta("origin", stored)
                stored = store.meta("origin") or stored
        return cls(store, stored, checkpoint_every, key_store, project_root)

    # --- writing ----------------------------------------------------------------------------------
    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Record every event published on `bus`; returns a function that stops recording."""
        return bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        self.append(event)
        if event.kind == SESSION_FINISHED:
            self.checkpoint()

    def append(self, event: Event) -> int:
        """Append one event; returns its 0-based sequence number."""
        self._check_open()
        time = iso_utc(event.time)
        fields = (utf8_text(event.kind), utf8_text(event.session_id), utf8_text(event.actor),
                  utf8_text(event.user), utf8_text(event.id))
        payload = payload_text(event.payload)
        store = self.store
        with self._writing():
            tree = self._sync()
            seq = tree.size
            prev = self._head
            digest = merkle.leaf_hash(entry_leaf_data(seq, time, fields[0], fields[1], fields[2], fields[3],
                                                      fields[4], payload, prev))
            store.insert_entry((seq, time, *fields, payload, prev, digest))
            tree.append(digest)
            self._head = digest
            if tree.size - self._last_checkpoint_size >= self.checkpoint_every:
                self._checkpoint_in_transaction()
        return seq

    def extend(self, events: Iterable[Event]) -> list[int]:
        """Append many events in one transaction."""
        with self.batch():
            return [self.append(event) for event in events]

    @contextmanager
    def batch(self) -> Iterator[AuditLog]:
        """Group appends (a burst, a session) into one transaction; readers see them at the end."""
        self._check_open()
        with self._writing():
            yield self

    def checkpoint(self) -> Checkpoint:
        """Sign the current head now and store the checkpoint (durably); returns it."""
        self._check_open()
        with self._writing():
            self._sync()
            return self._checkpoint_in_transaction()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction; checkpoints signed inside it are announced once the outermost one commits."""
        with self.store.lock:
            with self.store.write():
                yield
            if not self.store.in_write:
                self._announce()

    def _announce(self) -> None:
        """Tell the per-user witness state, then the hooks (cosigning witnesses), of committed checkpoints.

        After the commit, never before: a checkpoint that was rolled back must not be remembered. Nothing
        here can undo or change the log: a failure is logged and kept in `witness_problem`.
        """
        signed, self._signed = self._signed, []
        for cp in signed:
            try:
                conflict = self._contradicts_witness_state(cp)
                if conflict:
                    # Recording it would make this machine vouch for two histories; verify names the conflict.
                    self._witness_failed(f"checkpoint size {cp.size} was not recorded as seen: {conflict}")
                else:
                    self.witness_state.record(cp, self.store.path)
                    self.witness_problem = None
            except AuditError as exc:
                self._witness_failed(f"checkpoint size {cp.size} was not recorded as seen: {exc.one_line()}")
            except Exception as exc:  # noqa: BLE001 - a broken witness state must not break the log
                self._witness_failed(f"checkpoint size {cp.size} was not recorded as seen: {type(exc).__name__}: "
                                     f"{exc}")
            hooks.checkpoint_signed(self.project_root, self.store.path, cp)

    def _witness_failed(self, problem: str) -> None:
        """Keep the problem for callers; log it once while it lasts, not at every checkpoint."""
        (log.warning if self.witness_problem is None else log.debug)("%s", problem)
        self.witness_problem = problem

    def _checkpoint_in_transaction(self) -> Checkpoint:
        tree = self._tree
        assert tree is not None
        latest = self.store.latest_checkpoint_row()
        if latest is not None and latest[1] == tree.size:  # already signed (maybe by another process)
            return self._parse_row(latest)
        key = self.key_store.signing_key()
        self._log_keys()
        checkpoint = Checkpoint.sign(self.origin, tree.size, tree.root(), key)
        now = iso_utc(datetime.now(UTC))
        row_id = self.store.insert_checkpoint(tree.size, now, checkpoint.to_note(), tree.to_bytes())
        self.store.make_durable()
        self._last_checkpoint_size = tree.size
        stored = Checkpoint(checkpoint.origin, checkpoint.size, checkpoint.root, checkpoint.signatures,
                            checkpoint.extensions, row_id, now)
        self._signed.append(stored)
        return stored

    def _log_keys(self) -> None:
        """Store the signing key's public half (and the rotations leading to it) in the log."""
        key = self.key_store.signing_key().public
        if key.fingerprint in self._keys_logged:
            return
        present = {row[0] for row in self.store.key_rows()}
        now = iso_utc(datetime.now(UTC))
        for rotation in self.key_store.history():
            if rotation.old.fingerprint not in present:
                self.store.insert_key(rotation.old.fingerprint, rotation.old.base64, rotation.time, None)
                present.add(rotation.old.fingerprint)
            if rotation.new.fingerprint not in present:
                self.store.insert_key(rotation.new.fingerprint, rotation.new.base64, rotation.time,
                                      json.dumps(rotation.to_dict(), sort_keys=True))
                present.add(rotation.new.fingerprint)
        if key.fingerprint not in present:
            self.store.insert_key(key.fingerprint, key.base64, now, None)
        self._keys_logged.add(key.fingerprint)

    def _contradicts_witness_state(self, cp: Checkpoint) -> str | None:
        """Why this log is not an extension of the newest checkpoint this machine signed for its origin.

        Judged from the log's own checkpoints (cheap, no rehashing): a log that extends what this machine
        signed still holds that checkpoint. One that does not was rolled back, rewritten or forked (a copy
        of the project signed on its own); it is left out of the witness state, so that `verify` keeps
        holding every copy to the history this machine vouched for first.
        """
        newest = self.witness_state.newest(cp.origin, self.store.path)
        if not newest:
            return None
        size = newest[0].size
        if size > cp.size:
            return (f"this machine saw {newest[0].describe()} ({newest[0].where()}) and this log has only "
                    f"{cp.size} entries")
        with self.store.lock:
            notes = [row[0] for row in self.store.conn.execute("SELECT note FROM checkpoints WHERE size = ?",
                                                                (size,))]
        roots = set()
        for note in notes:
            try:
                roots.add(Checkpoint.from_note(note).root)
            except AuditError:
                continue
        if any(seen.root in roots for seen in newest):
            return None
        return (f"this log holds no {newest[0].describe()}, which this machine signed ({newest[0].where()}): "
                "it does not extend it")

    def rotate_key(self) -> KeyInfo:
        """Replace this user's signing key; this log's next checkpoint records the rotation."""
        if self._tree is not None and self._tree.size > self._last_checkpoint_size:
            self.checkpoint()  # everything so far is signed by the old key
        self.key_store.rotate()
        self._keys_logged.clear()
        return self.key_info()

    def close(self) -> None:
        """Sign a final checkpoint if entries were added since the last one, then close the file."""
        if self._closed:
            return
        if self.store.readonly:
            self._closed = True
            self.store.close()
            return
        try:
            with self._writing():
                tree = self._sync()
                if tree.size > self._last_checkpoint_size:
                    self._checkpoint_in_transaction()
        finally:
            self._closed = True
            self.store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise AuditError("the audit log is closed")

    # --- the in-memory tree -------------------------------------------------------------------------
    def _forget(self) -> None:
        """A transaction rolled back: drop what we believed about the head, the stored keys and the
        checkpoints signed in it (they were never committed)."""
        self._signed = []
        self._tree = None
        self._synced = -1
        self._keys_logged.clear()

    def _sync(self) -> merkle.CompactRange:
        """Bring the compact range up to the database's head (another process may have appended)."""
        store = self.store
        if self._tree is not None and store.in_write and self._synced == store.transaction:
            return self._tree  # nobody else can have written inside our own transaction
        size, head = store.head()
        tree = self._tree
        if tree is None or tree.size > size or (tree.size == size and head != self._head):
            tree = self._resume_tree(size)
        if tree.size < size:
            tree.extend(store.leaf_hashes(tree.size, size))
        latest = store.latest_checkpoint_row()
        self._last_checkpoint_size = latest[1] if latest else 0
        self._tree, self._head = tree, head
        self._synced = store.transaction if store.in_write else -1
        return tree

    def _resume_tree(self, size: int) -> merkle.CompactRange:
        """Start from the latest checkpoint's stored compact range when it is sound, else from leaf 0."""
        latest = self.store.latest_checkpoint_row()
        if latest is not None and latest[1] <= size:
            try:
                tree = merkle.CompactRange.from_bytes(latest[1], latest[4])
                if tree.root() == Checkpoint.from_note(latest[3]).root:
                    return tree
            except (ValueError, AuditError):
                pass
        return merkle.CompactRange()

    # --- reading ----------------------------------------------------------------------------------
    def entries(self, since: datetime | None = None, until: datetime | None = None, session: str | None = None,
                kinds: Iterable[str] | None = None, from_seq: int | None = None) -> Iterator[AuditEntry]:
        """Entries in order, filtered by time range (inclusive), session, kinds and first sequence number."""
        where, params = entry_filter(since, until, session, kinds, from_seq)
        with self.store.lock:
            rows = self.store.entry_rows(where, params).fetchall()
        for row in rows:
            yield AuditEntry.from_row(row)

    def sessions(self) -> list[SessionSummary]:
        with self.store.lock:
            rows = self.store.conn.execute(
                "SELECT session_id, MIN(time), MAX(time), COUNT(*), GROUP_CONCAT(DISTINCT actor), MIN(seq) "
                "FROM entries GROUP BY session_id ORDER BY MIN(seq)").fetchall()
        return [SessionSummary(r[0], datetime.fromisoformat(r[1]), datetime.fromisoformat(r[2]), r[3],
                               tuple(sorted(set((r[4] or "").split(","))))) for r in rows]

    def size(self) -> int:
        with self.store.lock:
            return self.store.head()[0]

    def latest_checkpoint(self) -> Checkpoint | None:
        with self.store.lock:
            row = self.store.latest_checkpoint_row()
        return self._parse_row(row) if row else None

    def checkpoints(self) -> list[Checkpoint]:
        with self.store.lock:
            rows = self.store.checkpoint_rows()
        return [self._parse_row(row) for row in rows]

    @staticmethod
    def _parse_row(row: tuple[int, int, str, str, bytes]) -> Checkpoint:
        cp = Checkpoint.from_note(row[3])
        return Checkpoint(cp.origin, cp.size, cp.root, cp.signatures, cp.extensions, row[0], row[2])

    def key_info(self) -> KeyInfo:
        """This user's signing key (created on first use) and where it is kept."""
        info = self.key_store.info(create=True)
        assert info is not None
        return info

    def verify(self, pinned: list[Any] | None = None, reference: Checkpoint | None = None) -> VerifyResult:
        """Recompute everything and check every signature; see `workbench.audit.verify`."""
        from workbench.audit.verify import verify_store

        with self.store.lock:
            return verify_store(self.store, pinned=pinned, reference=reference, key_store=self.key_store,
                                origin=self.origin, witness_state=self.witness_state)

    def prove(self, seq: int) -> Any:
        from workbench.audit.verify import inclusion_proof

        with self.store.lock:
            return inclusion_proof(self.store, seq)


def entry_filter(since: datetime | None, until: datetime | None, session: str | None,
                 kinds: Iterable[str] | None, from_seq: int | None = None) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause (and its parameters) for the usual entry filters."""
    clauses: list[str] = []
    params: list[Any] = []
    if from_seq is not None:
        clauses.append("seq >= ?")
        params.append(from_seq)
    if since is not None:
        clauses.append("time >= ?")
        params.append(iso_utc(since))
    if until is not None:
        clauses.append("time <= ?")
        params.append(iso_utc(until))
    if session is not None:
        clauses.append("session_id = ?")
        params.append(session)
    kind_list = list(kinds or ())
    if kind_list:
        clauses.append(f"kind IN ({', '.join('?' for _ in kind_list)})")
        params.extend(kind_list)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), tuple(params)
