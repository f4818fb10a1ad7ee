"""The fast entry scan: check every entry's hash and chain link and build the Merkle tree.

Why a module of its own: this is the only part of verification whose cost grows with the log (a million
entries is three million SHA-256 calls and nine million values read from SQLite), so it is written for
speed, and it runs as a plain script in worker processes (``python -I scan.py DB FIRST_BLOCK END BLOCK``)
that import only the standard library and apsw: a worker starts in tens of milliseconds, where
``multiprocessing``'s spawn would import Workbench, and re-run the caller's main script, in each one.

How it stays fast and exact:

* Rows are read in blocks of `BLOCK` entries (a power of two, so each full block is a perfect subtree;
  small enough that every pass over a block stays in the CPU cache) and hashed with a handful of C-level
  calls per entry; leaf hashes, chain links and stored hashes are compared as whole lists.
* In a worker, apsw's SQLite builds each header (`PACKED_SQL`, with json_quote: the canonical escaping);
  in this process (small logs, or a worker that failed) the standard sqlite3 module hands over the raw
  fields as bytes and the header is formatted without escaping (`fast_leaves`).
* Either way the shortcut is only a filter. A block passes when every recomputed leaf equals its stored
  hash, every link equals the previous hash, and every field has the stored type (the queries' `typeof`
  filters drop other rows, which the row count then sees; json_quote refuses a BLOB). For the unescaped
  header there is one more condition, no backslash in it, and this is why that is exact: an equal hash
  means the unescaped header U(row) equals the canonical header C(signed) of the entry that was signed.
  C(signed) then has no backslash either, so the signed fields needed no escaping and C(signed) =
  U(signed), which holds exactly the skeleton's quotes; so the row's fields hold no quote, U(row) splits
  into fields one way only, and they are the signed ones. (A raw control character cannot match: C never
  holds one.) Anything else (a quote or backslash a field really holds, a control character, a wrong
  type, a changed entry) marks the block, and the caller re-checks it with the reference code
  (`workbench.audit.verify.scan_entries`), which names the first bad entry, or finds it sound.
* A block's result is its subtree root, plus, at each size the caller asked about (checkpoints, the witness
  state) that falls inside the block, the compact range inside the block folded into one hash (`fold`: the
  right end of the root computation), so the caller assembles the roots at those sizes and the whole tree
  from block roots without touching an entry twice, and little comes back through the pipe.
* A worker opens the database and starts its read before it is told the sizes (on stdin), so its start
  overlaps with the caller's reading of keys, checkpoints and the witness state.
* The two loops that hash (`packed_leaves`, `levels_of`) also exist in C (`scan_native.c`, built by
  `make setup` where a compiler is found): the same values, without a Python call per SHA-256, which
  halves the scan's CPU. The Python functions stay the reference; tests hold the two to the same answers,
  and without the module (or with WORKBENCH_NATIVE_SCAN=0) the scan runs in Python.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sqlite3
import sys
from binascii import hexlify
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import count, repeat
from operator import itemgetter
from pathlib import Path

BLOCK = 1 << 10  # ~0.5 MB of rows: each pass over a block stays in the CPU cache (32768 was 35% slower)
COLUMNS = "time, kind, session_id, actor, user, event_id, payload, prev, hash"
TYPED = ("typeof(time) = 'text' AND typeof(kind) = 'text' AND typeof(session_id) = 'text' AND "
         "typeof(actor) = 'text' AND typeof(user) = 'text' AND typeof(event_id) = 'text' AND "
         "typeof(payload) = 'text' AND typeof(prev) = 'blob' AND typeof(hash) = 'blob'")
BLOCK_SQL = f"SELECT {COLUMNS} FROM entries WHERE seq >= ? AND seq < ? AND {TYPED} ORDER BY seq"
# The leaf input, 0x00 and the canonical header (see workbench.audit.canonical), for fields that need no
# JSON escaping: keys in code-point order, no whitespace, the payload by its hex SHA-256.
HEADER = (b'\x00{"actor":"%s","event_id":"%s","kind":"%s","payload_sha256":"%s","prev":"%s","seq":%d,'
          b'"session_id":"%s","time":"%s","user":"%s"}')
GENESIS = bytes(32)

_sha = hashlib.sha256
_digest = type(_sha()).digest
_ONE = b"\x01"
_join = b"".join
_payload_of, _prev_of, _hash_of = itemgetter(6), itemgetter(7), itemgetter(8)


def load_native():  # noqa: ANN201 - the scan_native module, or None
    """The C loops (scan_native.c) when they are built for this Python and not switched off. Loaded by path,
    not imported: a worker runs as a script under `python -I`, without the package on sys.path."""
    if os.environ.get("WORKBENCH_NATIVE_SCAN", "1").strip().lower() in ("0", "off", "no", "false"):
        return None
    import importlib.util
    from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader

    for suffix in EXTENSION_SUFFIXES:
        path = str(Path(__file__).with_name("scan_native" + suffix))
        if os.path.isfile(path):
            try:
                spec = importlib.util.spec_from_file_location(
                    "scan_native", path, loader=ExtensionFileLoader("scan_native", path))
                if spec is None or spec.loader is None:
                    return None
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
            except (ImportError, OSError):  # built for another Python, or damaged: the Python loops
                return None
    return None


NATIVE = load_native()


@dataclass
class BlockResult:
    """One block: its index, its subtree root (None: it must be re-checked exactly), and at each wanted
    size that falls inside it, the compact range inside the block folded into one hash (see `fold`)."""

    index: int
    root: bytes | None
    inner: dict[int, bytes] = field(default_factory=dict)
    nodes: list[bytes] = field(default_factory=list)  # the last, partial block: its compact range


def fast_leaves(rows: list[tuple], start: int, last: bytes) -> list[bytes] | None:
    """The leaf hashes of `rows` (entries start, start+1, ...) when the block passes the fast check."""
    n = len(rows)
    try:
        hexes = list(map(hexlify, map(_digest, map(_sha, map(_payload_of, rows)))))
        headers = [HEADER % (r[3], r[5], r[1], h, hexlify(r[7]), s, r[2], r[0], r[4])
                   for r, h, s in zip(rows, hexes, count(start))]
    except (TypeError, ValueError, AttributeError):
        return None
    leaves = list(map(_digest, map(_sha, headers)))
    hashes = list(map(_hash_of, rows))
    if leaves != hashes:
        return None
    prevs = list(map(_prev_of, rows))
    if n and (prevs[0] != last or prevs[1:] != hashes[:-1]):
        return None
    if b"\\" in _join(headers):  # see the module docstring: with no backslash, equal hashes mean equal fields
        return None
    return leaves


def levels_of(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree over `leaves`: level b, index j covers leaves [j*2^b, (j+1)*2^b) when
    that range is full; an unpaired last node is carried up (RFC 6962's left-balanced tree)."""
    levels = [leaves]
    level = leaves
    while len(level) > 1:
        paired = list(map(_digest, map(_sha, map(_join, zip(repeat(_ONE), level[0::2], level[1::2])))))
        if len(level) & 1:
            paired.append(level[-1])
        levels.append(paired)
        level = paired
    return levels


_levels_of = NATIVE.levels_of if NATIVE is not None else levels_of


def compact_nodes(levels: list[list[bytes]], size: int) -> list[bytes]:
    """The compact range of the first `size` leaves: roots of its perfect subtrees, largest first."""
    nodes = []
    pos = 0
    for b in range(size.bit_length() - 1, -1, -1):
        if size >> b & 1:
            nodes.append(levels[b][pos >> b])
            pos += 1 << b
    return nodes


def fold(nodes: list[bytes]) -> bytes:
    """The tree root over a compact range's nodes (largest first), as RFC 6962 computes it: from the
    right, H(0x01 || n1 || H(0x01 || n2 || ...)). Folding the smallest nodes first changes nothing, so
    fold(a + [fold(b)]) == fold(a + b): a block's inner range is folded here, the rest by the caller."""
    h = nodes[-1]
    for node in reversed(nodes[:-1]):
        h = _digest(_sha(_join((_ONE, node, h))))
    return h


def block_result(index: int, leaves: list[bytes], want: Iterable[int], block: int = BLOCK) -> BlockResult:
    """`want`: the wanted sizes (only those inside this block are used; pass a block's own for speed)."""
    levels = _levels_of(leaves)
    start = index * block
    inner = {s: fold(compact_nodes(levels, s - start)) for s in want if start < s < start + len(leaves)}
    if len(leaves) == block:
        return BlockResult(index, levels[-1][0], inner)
    return BlockResult(index, b"", inner, compact_nodes(levels, len(leaves)))


def _sizes_within(want: set[int]):
    """A function giving the wanted sizes s with start < s < stop, by bisection (not a pass over all)."""
    ordered = sorted(want)

    def inside(start: int, stop: int) -> list[int]:
        return ordered[bisect_right(ordered, start):bisect_left(ordered, stop)]

    return inside


def scan_range(conn: sqlite3.Connection, first_block: int, end: int, want: set[int],
               block: int = BLOCK) -> list[BlockResult]:
    """Blocks from `first_block` up to entry `end` (exclusive), each checked fast; `conn` returns bytes
    for text. A block that does not pass fast has root None (the caller re-checks it exactly)."""
    results = []
    start = first_block * block
    inside = _sizes_within(want)
    if start:
        row = conn.execute("SELECT hash FROM entries WHERE seq = ?", (start - 1,)).fetchone()
        last = row[0] if row else None
    else:
        last = GENESIS
    enabled = gc.isenabled()
    gc.disable()  # a block is ~200,000 fresh objects; the cyclic collector would walk them over and over
    try:
        while start < end:
            stop = min(start + block, end)
            rows = conn.execute(BLOCK_SQL, (start, stop)).fetchall()
            index = start // block
            leaves = fast_leaves(rows, start, last) if len(rows) == stop - start and last is not None else None
            if leaves is None:
                results.append(BlockResult(index, None))
                row = conn.execute("SELECT hash FROM entries WHERE seq = ?", (stop - 1,)).fetchone()
                last = row[0] if row else None
            else:
                results.append(block_result(index, leaves, inside(start, stop), block))
                last = leaves[-1]
            start = stop
    finally:
        if enabled:
            gc.enable()
    return results


def connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    conn.text_factory = bytes
    return conn


# --- in a worker: apsw, with the header built by SQLite ---------------------------------------------
# Workers read through apsw (a dependency already, for the memory index): its SQLite builds each
# header in C with json_quote, the same escaping as the canonical encoder (so no backslash check is
# needed: a JSON encoding is one-to-one), and hands over 4 values a row instead of 9, which is most of
# the cost of reading. Never in the main process: two SQLite libraries in one process drop each other's
# POSIX locks on the same file (sqlite.org/howtocorrupt.html, 2.2.1); a worker is its own process.
# The leaf input: 0x00, the header with 0x01 where the payload's hash, `","prev":"` and the link's hex go
# (adjacent fields; json_quote escapes both bytes, so the only raw ones are these), with the payload, the
# link and the stored hash beside it. (The link's hex is made here: SQLite's lower(hex()) cost more.)
PACKED_SQL = (
    "SELECT CAST(concat(char(0), '{\"actor\":', json_quote(actor), ',\"event_id\":', json_quote(event_id), "
    "',\"kind\":', json_quote(kind), ',\"payload_sha256\":\"', char(1), "
    "'\",\"seq\":', seq, ',\"session_id\":', json_quote(session_id), ',\"time\":', json_quote(time), "
    "',\"user\":', json_quote(user), '}') AS BLOB), CAST(payload AS BLOB), prev, hash FROM entries "
    "WHERE seq >= ? AND seq < ? AND typeof(payload) = 'text' AND typeof(prev) = 'blob' AND typeof(hash) = 'blob' "
    "ORDER BY seq")
_input_of, _packed_payload, _packed_prev, _packed_hash = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(3)
_PREV_KEY = b'","prev":"'


def packed_leaves(rows: list[tuple], last: bytes) -> list[bytes] | None:
    """Like `fast_leaves`, for rows of `PACKED_SQL`."""
    prevs = list(map(_packed_prev, rows))
    try:
        hexes = map(hexlify, map(_digest, map(_sha, map(_packed_payload, rows))))
        middles = map(_join, zip(hexes, repeat(_PREV_KEY), map(hexlify, prevs)))
        inputs = list(map(bytes.replace, map(_input_of, rows), repeat(b"\x01"), middles, repeat(1)))
    except (TypeError, ValueError):
        return None
    leaves = list(map(_digest, map(_sha, inputs)))
    hashes = list(map(_packed_hash, rows))
    if leaves != hashes:
        return None
    if rows and (prevs[0] != last or prevs[1:] != hashes[:-1]):
        return None
    return leaves


_packed_leaves = NATIVE.packed_leaves if NATIVE is not None else packed_leaves


def connect_apsw(path: str | Path):  # noqa: ANN201 - an apsw.Connection, inside a read transaction
    import apsw

    conn = apsw.Connection(f"{Path(path).absolute().as_uri()}?mode=ro",  # one thread: no mutex per call
                           flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI | apsw.SQLITE_OPEN_NOMUTEX)
    conn.set_busy_timeout(30_000)
    conn.execute("BEGIN")  # one snapshot for the whole range
    conn.execute("SELECT 1 FROM entries LIMIT 1").fetchall()  # taken now, before the sizes arrive
    return conn


def scan_range_apsw(conn, first_block: int, end: int, want: set[int],  # noqa: ANN001 - from connect_apsw
                    block: int = BLOCK) -> list[BlockResult]:
    import apsw

    results = []
    start = first_block * block
    inside = _sizes_within(want)
    if start:
        row = conn.execute("SELECT hash FROM entries WHERE seq = ?", (start - 1,)).fetchall()
        last = row[0][0] if row and isinstance(row[0][0], bytes) else None
    else:
        last = GENESIS
    enabled = gc.isenabled()
    gc.disable()
    try:
        while start < end:
            stop = min(start + block, end)
            index = start // block
            try:
                rows = conn.execute(PACKED_SQL, (start, stop)).fetchall()
            except apsw.Error:  # a field json_quote refuses (a BLOB where text belongs): checked exactly
                rows = None
            leaves = (_packed_leaves(rows, last) if rows is not None and len(rows) == stop - start
                      and last is not None else None)
            if leaves is None:
                results.append(BlockResult(index, None))
                row = conn.execute("SELECT hash FROM entries WHERE seq = ?", (stop - 1,)).fetchall()
                last = row[0][0] if row and isinstance(row[0][0], bytes) else None
            else:
                results.append(block_result(index, leaves, inside(start, stop), block))
                last = leaves[-1]
            start = stop
    finally:
        if enabled:
            gc.enable()
    return results


# --- as a worker process ---------------------------------------------------------------------------
def to_json(results: list[BlockResult]) -> str:
    return json.dumps([[r.index, None if r.root is None else r.root.hex(), {str(s): h.hex() for s, h in r.inner.items()},
                        [h.hex() for h in r.nodes]] for r in results], separators=(",", ":"))


def from_json(text: str) -> list[BlockResult]:
    """A worker's answer (our own process, but still parsed strictly: shapes and lengths checked)."""
    out = []
    for index, root, inner, nodes in json.loads(text):
        if not isinstance(index, int) or not (root is None or isinstance(root, str)):
            raise ValueError("malformed block result")
        out.append(BlockResult(index, None if root is None else _hash(root),
                               {int(s): _hash(h, exact=True) for s, h in inner.items()},
                               [_hash(h, exact=True) for h in nodes]))
    return out


def _hash(text: str, exact: bool = False) -> bytes:
    """A hash as hex (an empty one stands for a partial block's root, never for a node)."""
    value = bytes.fromhex(text)
    if len(value) not in ((32,) if exact else (0, 32)):
        raise ValueError("a hash is not 32 bytes")
    return value


def main(argv: list[str]) -> int:
    """``scan.py DB FIRST_BLOCK END BLOCK`` with the wanted sizes as a JSON list on stdin; JSON out.

    The database is opened, and the read begun, before the sizes are read: the caller sends them once it
    knows them, while this process starts."""
    path, first_block, end, block = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    try:
        import apsw  # noqa: F401
    except ImportError:
        conn = connect(path)
        try:
            want = {int(s) for s in json.loads(sys.stdin.read() or "[]")}
            results = scan_range(conn, first_block, end, want, block)
        finally:
            conn.close()
    else:
        fast = connect_apsw(path)
        try:
            want = {int(s) for s in json.loads(sys.stdin.read() or "[]")}
            results = scan_range_apsw(fast, first_block, end, want, block)
        finally:
            fast.close()
    sys.stdout.write(to_json(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
