"""Verification: recompute the hash chain and the Merkle tree, check every checkpoint and key.

What is checked, in this order (the first failure is reported, naming the entry, checkpoint or key):

1. keys: each stored public key matches its fingerprint; each rotation record is signed by both keys;
   every stored key is *trusted*: connected through rotation records to a pinned key (``--pubkey``) or,
   with none pinned, to this machine's signing key (current or earlier). On a machine that has no
   signing key and with nothing pinned, the log's own keys are accepted and the result says so
   (`VerifyResult.pinned` is False): compare the printed fingerprint with the one you expect.
2. checkpoints: numbered 1..k without gaps, each a well-formed signed note for this log's origin with a
   valid signature by a trusted stored key.
3. entries: numbered 0..n-1 without gaps, each entry's ``prev`` equal to the previous entry's hash, and
   each hash equal to the leaf hash of its canonical header (see `canonical`).
4. every checkpoint's root equals the tree root recomputed from the entries at its size, and no
   checkpoint covers more entries than exist (truncation).
5. the per-user witness state (`witness_state`): every checkpoint this machine ever signed for this
   log's origin must still be there, at the same root, with at least that many entries. A log that was
   rolled back to an older copy, truncated, lost checkpoints, or was rewritten with a recomputed chain
   fails here naming the evidence ("this machine saw checkpoint size 48 with root ab12...; ..."). On a
   machine that never signed this log the result says so (`VerifyResult.witness`).
6. optionally, an earlier checkpoint a reviewer kept: signed by a trusted key and equal to the
   recomputed root at its size, which proves the log only grew since.

Entries after the last checkpoint are hashed and chained but not yet signed; the result counts them.
The entry scan (3 and 4) is the part whose cost grows with the log (bench/audit.py measures it); it is
`workbench.audit.entry_scan`, started before the signatures are checked so that both run at once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.audit import merkle
from workbench.audit.checkpoint import Checkpoint
from workbench.audit.entry_scan import EntryScan, Failure, Scan, scan_entries  # noqa: F401 - callers' names
from workbench.audit.errors import AuditError
from workbench.audit.keys import KeyStore, PublicKey, Rotation, SigningKey, unb64
from workbench.audit.store import AuditStore
from workbench.audit.witness_state import Seen, WitnessState

if TYPE_CHECKING:
    from workbench.audit.cosign import WitnessReport

log = logging.getLogger(__name__)


@dataclass
class VerifyResult:
    """The outcome of a verification. `first_error` is one line naming where and what, or None."""

    ok: bool
    entries: int
    root: str
    fingerprint: str
    checkpoints: int = 0
    signed_entries: int = 0
    first_error: str | None = None
    pinned: bool = True
    warnings: list[str] = field(default_factory=list)
    consistent_with: int | None = None
    witness: str = ""  # what the per-user witness state said: one line ("" when it was not consulted)
    vkey: str = ""  # the signer's key as a C2SP verifier key (name+keyhash+base64), for note tools
    witnessed: int = 0  # how many of this log's checkpoints this machine recorded signing
    cosignatures: WitnessReport | None = None  # an export's: who cosigned which checkpoint (checked)

    def message(self) -> str:
        if not self.ok:
            return self.first_error or "verification failed"
        unsigned = self.entries - self.signed_entries
        text = (f"ok: {self.entries} entries, root {self.root}, key {self.fingerprint or '(none)'}, "
                f"{self.checkpoints} checkpoints")
        if unsigned:
            text += f", {unsigned} newest entries not yet signed by a checkpoint"
        if self.consistent_with is not None:
            text += f"; consistent with your checkpoint of size {self.consistent_with}"
        return text


# --- keys ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredKey:
    fingerprint: str
    key: PublicKey
    rotation: Rotation | None


def parse_key_rows(rows: Iterable[tuple[Any, ...]]) -> list[StoredKey]:
    keys = []
    for fingerprint, public_key, _added, rotation in rows:
        label = f"public key {str(fingerprint)[:16]}"
        try:
            key = PublicKey(unb64(str(public_key)))
        except Exception as exc:
            raise Failure(f"{label} stored in the log is damaged ({exc})") from exc
        if key.fingerprint != fingerprint:
            raise Failure(f"{label} stored in the log does not match its fingerprint "
                          f"(the stored key was replaced with {key.fingerprint[:16]})")
        record = None
        if rotation:
            try:
                record = Rotation.from_dict(json.loads(rotation))
            except Exception as exc:
                raise Failure(f"{label}: its rotation record is damaged ({exc})") from exc
            if record.new != key or not record.valid():
                raise Failure(f"{label}: its rotation record does not verify")
        keys.append(StoredKey(fingerprint, key, record))
    return keys


def trusted(keys: list[StoredKey], anchors: list[PublicKey], pinned: bool) -> list[PublicKey]:
    """The stored keys a verifier may accept; raises Failure naming the first key it cannot trust."""
    links: dict[PublicKey, set[PublicKey]] = {}
    for stored in keys:
        if stored.rotation is not None:
            links.setdefault(stored.rotation.old, set()).add(stored.rotation.new)
            links.setdefault(stored.rotation.new, set()).add(stored.rotation.old)
    if anchors:
        reach = set(anchors)
    elif keys:
        reach = {keys[0].key}
    else:
        return []
    todo = list(reach)
    while todo:
        for other in links.get(todo.pop(), ()):
            if other not in reach:
                reach.add(other)
                todo.append(other)
    for stored in keys:
        if stored.key not in reach:
            if anchors:
                whose = "pinned with --pubkey" if pinned else "this machine's signing key (or an earlier one)"
                raise Failure(f"public key {stored.fingerprint[:16]} stored in the log is not trusted: it is not "
                              f"{whose}, nor linked to it by a rotation record")
            raise Failure(f"public key {stored.fingerprint[:16]} stored in the log is unrelated to the log's "
                          "other keys (pass --pubkey with the key you trust)")
    return [stored.key for stored in keys]


# --- checkpoints ---------------------------------------------------------------------------------
def parse_checkpoints(rows: list[tuple[int, int, str, str, bytes]], origin: str) -> list[Checkpoint]:
    result = []
    for expected, (row_id, size, time, note, _frontier) in enumerate(rows, start=1):
        if row_id != expected:
            raise Failure(f"checkpoint #{expected} is missing (the next stored one is #{row_id})")
        try:
            cp = Checkpoint.from_note(note)
        except AuditError as exc:
            raise Failure(f"checkpoint #{row_id}: its text does not parse ({exc.message})") from exc
        if cp.size != size:
            raise Failure(f"checkpoint #{row_id}: its stored size {size} differs from its signed size {cp.size}")
        result.append(Checkpoint(cp.origin, cp.size, cp.root, cp.signatures, cp.extensions, row_id, time))
    return result


def check_checkpoint(cp: Checkpoint, origin: str, keys: list[PublicKey], own: SigningKey | None = None) -> PublicKey:
    """The trusted key whose valid signature is on `cp`; raises Failure naming what is wrong.

    `own`: this machine's signing key, when it is trusted. Ed25519 signing is deterministic (RFC 8032),
    so a signature equal to the one `own` makes over the same text is valid; making it costs a third of
    checking it. Any other signature, or one that differs, is verified as usual.
    """
    if cp.origin != origin:
        raise Failure(f"{cp.label()}: it is for log {cp.origin!r}, not {origin!r}")
    if own is not None:
        own_hash = own.public.key_hash(origin)
        body = None
        for sig in cp.signatures:
            if sig.name == origin and sig.key_hash == own_hash:
                body = body if body is not None else cp.body().encode("utf-8")
                if own.sign(body) == sig.signature:
                    return own.public
    key, why = cp.verify(keys)
    if key is None:
        raise Failure(f"{cp.label()}: {why}")
    return key


def check_roots(checkpoints: list[Checkpoint], scan: Scan) -> None:
    for cp in checkpoints:
        if cp.size > scan.size:
            raise Failure(f"{cp.label()}: it covers {cp.size} entries but the log has only {scan.size}: entries "
                          f"{scan.size}..{cp.size - 1} were deleted (truncation)")
        if scan.roots.get(cp.size) != cp.root:
            raise Failure(f"{cp.label()}: its signed root does not match entries 0..{cp.size - 1} (entries "
                          "were changed, removed or added after they were signed)")


def check_reference(reference: Checkpoint, origin: str, keys: list[PublicKey], scan: Scan) -> None:
    label = f"your checkpoint (size {reference.size})"
    if reference.origin != origin:
        raise Failure(f"{label} is for log {reference.origin!r}, not {origin!r}")
    key, why = reference.verify(keys)
    if key is None:
        raise Failure(f"{label}: {why}")
    if reference.size > scan.size:
        raise Failure(f"{label}: the log now has only {scan.size} entries: it was truncated since")
    if scan.roots.get(reference.size) != reference.root:
        raise Failure(f"{label}: the log's first {reference.size} entries no longer hash to its root: "
                      "the log was rewritten, not only appended to")


# --- the per-user witness state -----------------------------------------------------------------
NEVER_SEEN = ("this machine never signed this log, so nothing here can tell whether checkpoints were removed "
              "or the log was replaced before it reached you: only the log's own signatures were checked")


def check_witnessed(seen: list[Seen], checkpoints: list[Checkpoint], scan: Scan) -> str:
    """Check the log against the checkpoints this machine signed for it; one line on success, else Failure.

    The newest evidence is checked first, so the message names the largest checkpoint the log betrays.
    """
    if not seen:
        return NEVER_SEEN
    in_log = {(cp.size, cp.root) for cp in checkpoints}
    for s in sorted(seen, key=lambda s: s.size, reverse=True):
        evidence = f"this machine saw {s.describe()} ({s.where()})"
        if s.size > scan.size:
            raise Failure(f"{evidence}; the log now has only {scan.size} entries: it was truncated or rolled back "
                          "to an older copy")
        root = scan.roots.get(s.size)
        if root != s.root:
            now = root.hex()[:12] + "\u2026" if root else "something else"
            raise Failure(f"{evidence}; the log's first {s.size} entries now hash to {now}: its history was "
                          "rewritten (a recomputed chain does not hide that)")
        if (s.size, s.root) not in in_log:
            raise Failure(f"{evidence}; the log has no checkpoint of that size any more: checkpoints were deleted")
    newest = max(seen, key=lambda s: s.size)
    text = (f"this machine signed {len(seen)} of this log's checkpoints (the newest of size {newest.size}) and "
            "the log still holds and extends every one")
    newer = sum(1 for cp in checkpoints if cp.size > newest.size)
    if newer:
        text += f"; {newer} newer checkpoint(s) were not signed here"
    return text


def _seen(witness_state: WitnessState | None, origin: str, db_path: Path | str | None = None
          ) -> list[Seen] | None:
    if witness_state is None:
        return None
    try:
        return witness_state.seen(origin, db_path)
    except AuditError as exc:
        raise Failure(f"cannot check the log against what this machine signed: {exc.one_line()}") from exc


# --- the whole log -------------------------------------------------------------------------------
def anchors_for(pinned: list[PublicKey] | None, key_store: KeyStore | None) -> tuple[list[PublicKey], bool]:
    if pinned:
        return list(pinned), True
    if key_store is None:
        return [], False
    return key_store.known_keys(), False


def verify_store(store: AuditStore, pinned: list[PublicKey] | None = None, reference: Checkpoint | None = None,
                 key_store: KeyStore | None = None, origin: str | None = None,
                 witness_state: WitnessState | bool = True) -> VerifyResult:
    """Verify the log in `store`; never raises for a tampered log, only reports.

    `witness_state`: this user's (True, the default), another one, or False to leave it out.
    """
    origin = origin or store.meta("origin") or ""
    anchors, is_pinned = anchors_for(pinned, key_store)
    result = VerifyResult(ok=False, entries=0, root="", fingerprint="", pinned=bool(anchors))
    state = WitnessState() if witness_state is True else (witness_state or None)
    own = _own_key(key_store, anchors, is_pinned)
    with store.snapshot():
        _verify_snapshot(store, origin, anchors, is_pinned, reference, result, state, own)
    return result


def _own_key(key_store: KeyStore | None, anchors: list[PublicKey], is_pinned: bool) -> SigningKey | None:
    """This machine's signing key, if it is one the verification trusts (never created here)."""
    if key_store is None:
        return None
    try:
        loaded = key_store.load(create=False)
    except AuditError:
        return None
    if loaded is None or (is_pinned and loaded[0].public not in anchors):
        return None
    return loaded[0]


def _verify_snapshot(store: AuditStore, origin: str, anchors: list[PublicKey], is_pinned: bool,
                     reference: Checkpoint | None, result: VerifyResult, state: WitnessState | None,
                     own: SigningKey | None = None) -> None:
    try:
        signer = None
        # The entry scan starts first, in worker processes: they start while the witness state, keys and
        # checkpoints are read here, and scan while the signatures are checked.
        with EntryScan(store) as pending:
            seen = _seen(state, origin, getattr(store, "path", None))
            # The roots wanted: at the stored checkpoint sizes (parse_checkpoints fails unless each is the
            # signed size), the sizes this machine signed, and the reviewer's.
            want = {size for (size,) in store.conn.execute("SELECT size FROM checkpoints") if isinstance(size, int)}
            want |= {s.size for s in seen or ()} | ({reference.size} if reference is not None else set())
            pending.ask(want)
            keys = trusted(parse_key_rows(store.key_rows()), anchors, is_pinned)
            checkpoints = parse_checkpoints(store.checkpoint_rows(), origin)
            mine = own if own is not None and own.public in keys else None
            for cp in checkpoints:
                signer = check_checkpoint(cp, origin, keys, mine)
            scanned = pending.result()
        result.entries = scanned.size
        result.root = scanned.tree.root().hex()
        check_roots(checkpoints, scanned)
        if seen is not None:  # after the log's own checks: they name the entry; this names what was hidden
            result.witness = check_witnessed(seen, checkpoints, scanned)
            result.witnessed = len(seen)
        if reference is not None:
            check_reference(reference, origin, keys, scanned)
            result.consistent_with = reference.size
        result.checkpoints = len(checkpoints)
        result.signed_entries = checkpoints[-1].size if checkpoints else 0
        if signer is None and keys:
            signer = keys[-1]
        result.fingerprint = signer.fingerprint if signer else ""
        result.vkey = signer.vkey(origin) if signer and origin else ""
        if not anchors:
            result.warnings.append("no trusted key to compare with: check the fingerprint, or pass --pubkey")
        if scanned.size and not checkpoints:
            result.warnings.append("no checkpoint has been signed yet")
        result.ok = True
    except Failure as exc:
        result.first_error = str(exc)
    except sqlite3.DatabaseError as exc:  # text that is not UTF-8, a damaged page: reported, not raised
        result.first_error = f"the log cannot be read past some point ({exc}): it was damaged or tampered with"


@dataclass(frozen=True)
class InclusionProof:
    """Entry `seq` (leaf hash `leaf`) is in the tree of `size` entries with `root` (a signed checkpoint)."""

    seq: int
    size: int
    leaf: bytes
    path: list[bytes]
    root: bytes
    checkpoint: Checkpoint
    verified: bool

    def to_text(self) -> str:
        lines = [f"entry {self.seq} in tree of size {self.size}",
                 f"leaf hash {self.leaf.hex()}", f"root      {self.root.hex()}", "audit path:"]
        lines += [f"  {h.hex()}" for h in self.path] or ["  (empty: the tree has one entry)"]
        lines.append("verified: yes" if self.verified else "verified: NO (the path does not lead to the signed root)")
        return "\n".join(lines)


def inclusion_proof(store: AuditStore, seq: int) -> InclusionProof:
    row = store.latest_checkpoint_row()
    if row is None:
        raise AuditError("no checkpoint has been signed yet", "run: workbench audit checkpoint")
    cp = Checkpoint.from_note(row[3])
    if not 0 <= seq < cp.size:
        size = store.head()[0]
        if 0 <= seq < size:
            raise AuditError(f"entry {seq} is newer than the latest checkpoint (size {cp.size})",
                             "sign one with: workbench audit checkpoint --new")
        raise AuditError(f"there is no entry {seq} (the log has {size} entries, numbered from 0)")
    leaves = store.leaf_hashes(0, cp.size)
    levels = merkle.TreeLevels(leaves)
    path = levels.inclusion_proof(seq)
    ok = merkle.verify_inclusion(leaves[seq], seq, cp.size, path, cp.root)
    return InclusionProof(seq, cp.size, leaves[seq], path, cp.root,
                          Checkpoint(cp.origin, cp.size, cp.root, cp.signatures, cp.extensions, row[0], row[2]), ok)
