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
The entry scan is the part whose cost grows with the log (bench/audit.py measures it):
`workbench.audit.scan` checks blocks of entries with a fast filter and builds each block's subtree; logs
of `PARALLEL_MIN` entries or more are split between worker processes (started first, so they scan while
this process checks the signatures). A block the filter does not pass is re-checked here by the
reference code, `scan_entries`, which names the first bad entry; blocks are judged in order, so the
first problem by entry number is the one reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from workbench.audit import merkle, scan
from workbench.audit.checkpoint import Checkpoint
from workbench.audit.errors import AuditError
from workbench.audit.keys import KeyStore, PublicKey, Rotation, SigningKey, unb64
from workbench.audit.store import ENTRY_COLUMNS, GENESIS, AuditStore
from workbench.audit.witness_state import Seen, WitnessState

log = logging.getLogger(__name__)

BATCH = 65536
BLOCK = scan.BLOCK  # entries per block of the fast scan (a power of two)
PARALLEL_MIN = 100_000  # below this, starting worker processes costs more than it saves
MAX_WORKERS = 4
WORKER_TIMEOUT_S = 3600.0


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


class Failure(Exception):
    """Internal: stops a verification at its first problem (`seq`: the entry, where there is one)."""

    def __init__(self, message: str, seq: int | None = None):
        super().__init__(message)
        self.seq = seq


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


# --- entries -------------------------------------------------------------------------------------
@dataclass
class Scan:
    size: int
    tree: merkle.CompactRange
    roots: dict[int, bytes]


def scan_entries(batches: Iterable[list[tuple[Any, ...]]], want_roots: set[int], start: int = 0,
                 last: bytes | None = GENESIS, tree: bool = True) -> Scan:
    """Check numbering, chain links and hashes of entries in order, from entry `start` whose predecessor
    has hash `last`; with `tree`, also build the tree and collect its roots at the `want_roots` sizes."""
    sha = hashlib.sha256
    enc = encode_basestring
    nodes: list[bytes] = []
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in want_roots else {}
    size = start
    try:
        for rows in batches:
            for seq, time, kind, sid, actor, user, eid, payload, prev, digest in rows:
                if seq != size:
                    _bad_number(seq, size)
                if prev != last:
                    raise Failure(f"entry {seq} ({kind}): its link to entry {seq - 1} is broken (an entry "
                                  "before it was removed, inserted, reordered or changed)", seq)
                leaf = sha(b"\x00" + (
                    f'{{"actor":{enc(actor)},"event_id":{enc(eid)},"kind":{enc(kind)},'
                    f'"payload_sha256":"{sha(payload.encode()).hexdigest()}","prev":"{prev.hex()}",'
                    f'"seq":{seq},"session_id":{enc(sid)},"time":{enc(time)},"user":{enc(user)}}}'
                ).encode()).digest()
                if leaf != digest:
                    raise Failure(f"entry {seq} ({kind}, session {sid}, {time}): its contents do not match its "
                                  "hash (its payload, time or another field was changed)", seq)
                size += 1
                last = leaf
                if tree:
                    n, h = seq, leaf
                    while n & 1:
                        h = sha(b"\x01" + nodes.pop() + h).digest()
                        n >>= 1
                    nodes.append(h)
                    if size in want_roots:
                        roots[size] = merkle.CompactRange(size, nodes).root()
    except (TypeError, AttributeError, ValueError, UnicodeEncodeError) as exc:
        raise Failure(f"entry {size}: a field has the wrong type or encoding ({exc})", size) from exc
    return Scan(size, merkle.CompactRange(size, nodes) if tree else merkle.CompactRange(), roots)


def _bad_number(seq: Any, size: int) -> None:
    if isinstance(seq, int) and seq > size:
        missing = f"{size}" if seq == size + 1 else f"{size}..{seq - 1}"
        raise Failure(f"entry {missing} is missing: the log jumps from entry {size - 1} to {seq}", size)
    raise Failure(f"entry {size}: found sequence number {seq!r} out of order", size)


# --- the fast scan of a whole log --------------------------------------------------------------
class EntryScan:
    """The scan of every entry of a log: started at once in worker processes (`workbench.audit.scan`
    run as a plain script), while this process checks keys and signatures; `result()` scans this
    process's share, collects the workers', re-checks exactly any block the fast check did not pass, and
    assembles the tree and the roots at the wanted sizes. A worker that cannot start or answer has its
    share done here instead."""

    def __init__(self, store: AuditStore, want: set[int]):
        self.store = store
        self.want = set(want)
        last = store.conn.execute("SELECT MAX(seq) FROM entries").fetchone()[0]  # not head(): no hash is read
        self.size = last + 1 if isinstance(last, int) and last >= 0 else 0
        self.block = BLOCK
        self.blocks = -(-self.size // self.block)
        self.workers: list[tuple[int, int, subprocess.Popen[bytes], threading.Thread]] = []
        self.here = [(0, self.blocks)]  # the block ranges this process scans itself
        self.exact = False  # the numbering is not 0..size-1: the reference scan says where it breaks
        # Entry numbers start at 0 (the last is size - 1); a gap shows as a block short of rows.
        if last is not None and store.conn.execute("SELECT MIN(seq) FROM entries").fetchone()[0] != 0:
            self.exact = True
            return
        if not self.size:
            return
        parts = min(MAX_WORKERS, os.cpu_count() or 1, self.blocks) if self.size >= PARALLEL_MIN else 1
        if parts > 1:
            self._start_workers(parts)

    def _start_workers(self, parts: int) -> None:
        """Every block goes to a worker (this process checks keys and signatures meanwhile): workers read
        through apsw, faster than this process can (see `workbench.audit.scan`)."""
        script = Path(scan.__file__)
        if not script.is_file():  # installed as a zip: no script to run
            return
        bounds = [self.blocks * i // parts for i in range(parts + 1)]
        self.here = []
        for first, last in zip(bounds, bounds[1:], strict=False):
            if first == last:
                continue
            end = min(last * self.block, self.size)
            want = sorted(s for s in self.want if first * self.block < s <= end)
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", str(script), str(self.store.path.absolute()), str(first), str(end),
                     str(self.block)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            except OSError as exc:
                log.debug("verification worker unavailable (%s): this process scans its share", exc)
                self.here.append((first, last))
                continue
            feeder = threading.Thread(target=_feed, args=(proc, json.dumps(want).encode()), daemon=True)
            feeder.start()
            self.workers.append((first, last, proc, feeder))

    def close(self) -> None:
        for _first, _last, proc, _feeder in self.workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.workers = []

    def __enter__(self) -> EntryScan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def result(self) -> Scan:
        if self.exact or not self.size:
            cursor = self.store.entry_rows()
            try:
                return scan_entries(iter(lambda: cursor.fetchmany(BATCH), []), self.want)
            except sqlite3.OperationalError as exc:  # text that is not UTF-8 cannot even be read as text
                raise _undecodable(self.store, 0, self.size) from exc
        results: dict[int, scan.BlockResult] = {}
        for first, last in self.here:
            for r in self._scan_here(first, last):
                results[r.index] = r
        for first, last, proc, feeder in self.workers:
            for r in self._collect(first, last, proc, feeder):
                results[r.index] = r
        self.workers = []
        for index in range(self.blocks):  # in order: the first bad entry is the one reported
            found = results.get(index)
            if found is None or found.root is None:
                results[index] = self._exact_block(index)
        return self._assemble([results[i] for i in range(self.blocks)])

    def _scan_here(self, first: int, last: int) -> list[scan.BlockResult]:
        if first >= last:
            return []
        conn = self.store.conn
        factory = conn.text_factory
        conn.text_factory = bytes  # our own connection, under the store's lock, inside the snapshot
        try:
            return scan.scan_range(conn, first, min(last * self.block, self.size), self.want, self.block)
        finally:
            conn.text_factory = factory

    def _collect(self, first: int, last: int, proc: subprocess.Popen[bytes],
                 feeder: threading.Thread) -> list[scan.BlockResult]:
        feeder.join()
        proc.stdin = None  # the feeder wrote and closed it
        try:
            out, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
            if proc.returncode != 0:
                raise RuntimeError(f"exit {proc.returncode}: {err.decode(errors='replace')[-300:]}")
            found = scan.from_json(out.decode("utf-8"))
            if sorted(r.index for r in found) != list(range(first, last)):
                raise RuntimeError("it answered for other blocks")
            return found
        except (subprocess.TimeoutExpired, RuntimeError, ValueError, TypeError, UnicodeDecodeError) as exc:
            log.debug("verification worker for blocks %s..%s failed (%s): scanning them here", first, last, exc)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            return self._scan_here(first, last)

    def _exact_block(self, index: int) -> scan.BlockResult:
        """The reference check of one block: raises Failure naming its first bad entry, or passes."""
        start, stop = index * self.block, min((index + 1) * self.block, self.size)
        last: bytes | None = GENESIS
        if start:
            row = self.store.conn.execute("SELECT hash FROM entries WHERE seq = ?", (start - 1,)).fetchone()
            last = row[0] if row else None
        cursor = self.store.conn.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE seq >= ? AND seq < ? "
                                         "ORDER BY seq", (start, stop))
        try:
            checked = scan_entries(iter(lambda: cursor.fetchmany(BATCH), []), set(), start, last, tree=False)
        except sqlite3.OperationalError as exc:  # text that is not UTF-8 cannot even be read as text
            raise _undecodable(self.store, start, stop) from exc
        if checked.size != stop:
            raise Failure(f"entry {checked.size}..{stop - 1} is missing", checked.size)
        return scan.block_result(index, self.store.leaf_hashes(start, stop), self.want, self.block)

    def _assemble(self, blocks: list[scan.BlockResult]) -> Scan:
        """The tree and the wanted roots from block roots and the compact ranges inside blocks."""
        size, block = self.size, self.block
        partial = blocks[-1].nodes if size % block else []
        inner: dict[int, list[bytes]] = {}
        for b in blocks:
            inner.update(b.inner)
        frontier = merkle.CompactRange()
        roots: dict[int, bytes] = {}
        for s in sorted(w for w in self.want if 0 <= w <= size):
            full, rest = divmod(s, block)
            while frontier.size < full:
                frontier.append(blocks[frontier.size].root or b"")
            nodes = list(frontier.nodes) + (inner[s] if rest and s in inner else partial if rest else [])
            roots[s] = merkle.CompactRange(s, nodes).root() if s else merkle.EMPTY_ROOT
        while frontier.size < size // block:
            frontier.append(blocks[frontier.size].root or b"")
        return Scan(size, merkle.CompactRange(size, [*frontier.nodes, *partial]), roots)


def _undecodable(store: AuditStore, start: int, stop: int) -> Failure:
    """Name the first entry in [start, stop) holding text that is not UTF-8 (never echoing the bytes)."""
    names = ENTRY_COLUMNS.split(", ")
    conn = store.conn
    factory = conn.text_factory
    conn.text_factory = bytes
    try:
        for row in conn.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq",
                                (start, stop)):
            for name, value in zip(names, row, strict=True):
                if isinstance(value, bytes) and name not in ("prev", "hash"):
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError:
                        return Failure(f"entry {row[0]}: its {name} is not UTF-8 text (it was changed)", row[0])
        for seq, prev, digest in conn.execute("SELECT seq, typeof(prev), typeof(hash) FROM entries "
                                              "WHERE seq >= ? AND seq < ? ORDER BY seq", (start, stop)):
            if prev != b"blob" or digest != b"blob":
                return Failure(f"entry {seq}: its {'prev' if prev != b'blob' else 'hash'} is stored as "
                               f"{(prev if prev != b'blob' else digest).decode()}, not as a hash (it was changed)",
                               seq)
    finally:
        conn.text_factory = factory
    return Failure(f"an entry in {start}..{stop - 1} cannot be read as text", start)


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Hand a worker its wanted sizes without blocking this process on a full pipe."""
    try:
        assert proc.stdin is not None
        proc.stdin.write(data)
        proc.stdin.close()
    except (OSError, ValueError):
        pass  # it died before reading: collecting it says so, and its share is scanned here


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
        seen = _seen(state, origin, getattr(store, "path", None))
        keys = trusted(parse_key_rows(store.key_rows()), anchors, is_pinned)
        checkpoints = parse_checkpoints(store.checkpoint_rows(), origin)
        want = {cp.size for cp in checkpoints} | {s.size for s in seen or ()}
        if reference is not None:
            want.add(reference.size)
        signer = None
        # The entry scan starts in worker processes first; the signatures are checked meanwhile.
        with EntryScan(store, want) as pending:
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
