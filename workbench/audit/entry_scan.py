"""Checking every entry of a log: the reference scan, and the fast scan that spreads it over processes.

`scan_entries` is the reference: it checks each entry's number, link and hash in order, in plain Python,
and names the first bad entry. `EntryScan` gets the same verdict faster for a whole log: the blocks go
to worker processes running `workbench.audit.scan` as a plain script (started first, so that they scan
while the caller checks the signatures), each block passing a fast filter or being re-checked here by
`scan_entries`, in order, so the first problem by entry number is the one reported. The tree and its
roots at the wanted sizes are assembled from the blocks' subtrees.

`Failure` is how verification stops at its first problem, here and in `workbench.audit.verify`.
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
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from workbench.audit import merkle, scan
from workbench.audit.store import ENTRY_COLUMNS, GENESIS, AuditStore

log = logging.getLogger(__name__)

BATCH = 65536
BLOCK = scan.BLOCK  # entries per block of the fast scan (a power of two)
PARALLEL_MIN = 100_000  # below this, starting worker processes costs more than it saves
MAX_WORKERS = 4
WORKER_TIMEOUT_S = 3600.0


class Failure(Exception):
    """Internal: stops a verification at its first problem (`seq`: the entry, where there is one)."""

    def __init__(self, message: str, seq: int | None = None):
        super().__init__(message)
        self.seq = seq



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
    run as a plain script), while this process reads keys, checkpoints and the witness state and checks
    the signatures. `ask(want)` tells the workers the sizes whose roots are wanted, as soon as they are
    known (they start meanwhile); `result()` scans this process's share, collects the workers',
    re-checks exactly any block the fast check did not pass, and assembles the tree and the roots at the
    wanted sizes. A worker that cannot start or answer has its share done here instead."""

    def __init__(self, store: AuditStore, want: set[int] | None = None):
        self.store = store
        self.want = set(want or ())
        self.asked = False
        last = store.conn.execute("SELECT MAX(seq) FROM entries").fetchone()[0]  # not head(): no hash is read
        self.size = last + 1 if isinstance(last, int) and last >= 0 else 0
        self.block = BLOCK
        self.blocks = -(-self.size // self.block)
        self.workers: list[tuple[int, int, subprocess.Popen[bytes], threading.Thread | None]] = []
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
        if want is not None:
            self.ask(want)

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
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", str(script), str(self.store.path.absolute()), str(first), str(end),
                     str(self.block)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            except OSError as exc:
                log.debug("verification worker unavailable (%s): this process scans its share", exc)
                self.here.append((first, last))
                continue
            self.workers.append((first, last, proc, None))  # its sizes follow (`ask`)

    def ask(self, want: set[int]) -> None:
        """The sizes whose roots `result()` gives: each worker is sent those inside its share."""
        self.want = set(want)
        self.asked = True
        started = []
        for first, last, proc, _unsent in self.workers:
            end = min(last * self.block, self.size)
            mine = sorted(s for s in self.want if first * self.block < s <= end)
            feeder = threading.Thread(target=_feed, args=(proc, json.dumps(mine).encode()), daemon=True)
            feeder.start()  # a thread: a full pipe never blocks this process
            started.append((first, last, proc, feeder))
        self.workers = started

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
        if not self.asked:
            self.ask(self.want)
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
                 feeder: threading.Thread | None) -> list[scan.BlockResult]:
        if feeder is not None:
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
        inner: dict[int, bytes] = {}
        for b in blocks:
            inner.update(b.inner)
        frontier = merkle.CompactRange()
        roots: dict[int, bytes] = {}
        for s in sorted(w for w in self.want if 0 <= w <= size):
            full, rest = divmod(s, block)
            while frontier.size < full:
                frontier.append(blocks[frontier.size].root or b"")
            if not s:
                roots[s] = merkle.EMPTY_ROOT
            elif rest and s in inner:  # inside a block: the block folded its part (scan.fold)
                roots[s] = scan.fold([*frontier.nodes, inner[s]])
            else:
                roots[s] = merkle.CompactRange(s, [*frontier.nodes, *(partial if rest else [])]).root()
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
