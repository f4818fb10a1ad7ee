"""RFC 6962 (Certificate Transparency) Merkle tree hashing, proofs and proof verification.

Why this tree: a signed root over all entries lets a reviewer check one entry (inclusion proof,
O(log n) hashes) or that a log only grew between two checkpoints (consistency proof) without trusting
the machine that kept it. Definitions (RFC 6962 section 2.1; verification as in RFC 9162 2.1.3/2.1.4):

* the hash of an empty tree is SHA-256 of the empty string;
* a leaf hash is ``SHA-256(0x00 || data)``, an interior node ``SHA-256(0x01 || left || right)``;
* a tree of n > 1 leaves splits at k, the largest power of two smaller than n.

`CompactRange` keeps only the roots of the perfect subtrees that make up the tree so far (at most
log2(n) hashes), so appending costs O(1) hashes on average and the root O(log n): the log never
recomputes its tree from scratch. `TreeLevels` holds every level of a fixed-size tree, to answer many
proofs from one pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The right frontier of a growing tree: roots of its perfect subtrees, largest (leftmost) first."""

    __slots__ = ("size", "nodes")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()):
        if len(nodes) != bin(size).count("1"):
            raise ValueError(f"a compact range of size {size} has {bin(size).count('1')} nodes, not {len(nodes)}")
        self.size = size
        self.nodes = list(nodes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        nodes, n, h = self.nodes, self.size, leaf
        while n & 1:
            h = _sha256(b"\x01" + nodes.pop() + h).digest()
            n >>= 1
        nodes.append(h)
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        nodes = self.nodes
        h = nodes[-1]
        for i in range(len(nodes) - 2, -1, -1):
            h = _sha256(b"\x01" + nodes[i] + h).digest()
        return h

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.nodes)

    def to_bytes(self) -> bytes:
        return b"".join(self.nodes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> CompactRange:
        if len(blob) % HASH_SIZE:
            raise ValueError("a compact range is a whole number of hashes")
        return cls(size, [blob[i:i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)])


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The tree hash of `leaves` (leaf hashes), level by level."""
    if not leaves:
        return EMPTY_ROOT
    return TreeLevels(leaves).root()


class TreeLevels:
    """All levels of the tree over a fixed list of leaf hashes.

    Level i, index j is the hash of leaves [j * 2**i, min((j + 1) * 2**i, n)); an unpaired last node is
    carried up unchanged, which gives exactly RFC 6962's left-balanced tree.
    """

    def __init__(self, leaves: Sequence[bytes]):
        level = list(leaves)
        self.size = len(level)
        self.levels = [level]
        sha = _sha256
        while len(level) > 1:
            paired = [sha(b"\x01" + a + b).digest() for a, b in zip(level[0::2], level[1::2], strict=False)]
            if len(level) & 1:
                paired.append(level[-1])
            level = paired
            self.levels.append(level)

    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else EMPTY_ROOT

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for 0 <= start < end <= size."""
        width = end - start
        level = (width - 1).bit_length()
        if start % (1 << level) == 0 and end == min(start + (1 << level), self.size):
            return self.levels[level][start >> level]
        k = _split(width)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def inclusion_proof(self, index: int) -> list[bytes]:
        """RFC 6962 PATH(index, D[0:size]), from the leaf's sibling up."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} is not in a tree of size {self.size}")
        return self._path(index, 0, self.size)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        if end - start == 1:
            return []
        k = _split(end - start)
        if m < start + k:
            return [*self._path(m, start, start + k), self.subtree(start + k, end)]
        return [*self._path(m, start + k, end), self.subtree(start, start + k)]

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """RFC 6962 PROOF(old_size, D[0:size])."""
        if not 0 <= old_size <= self.size:
            raise ValueError(f"cannot prove size {old_size} against a tree of size {self.size}")
        if old_size in (0, self.size):
            return []
        return self._subproof(old_size, 0, self.size, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self.subtree(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, complete), self.subtree(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self.subtree(start, start + k)]


def _subtree(leaves: list[bytes], offset: int, start: int, end: int) -> bytes:
    """MTH of leaves [start, end) (absolute indexes) given `leaves` from index `offset` on."""
    if end - start == 1:
        return leaves[start - offset]
    k = 1 << ((end - start - 1).bit_length() - 1)
    return node_hash(_subtree(leaves, offset, start, start + k), _subtree(leaves, offset, start + k, end))


def consistency_proof_from_frontier(frontier: CompactRange, leaves: list[bytes], old: int, new: int) -> list[bytes]:
    """RFC 6962 PROOF(old, D[0:new]) from the compact range at `old` and the leaves [old, new).

    Every node of the proof inside [0, old) is one of the compact range's perfect subtrees (the proof
    walks down to the old tree's right edge, taking whole left siblings), and every other node lies
    within [old, new).
    """
    old_nodes = {}
    start = 0
    for node in frontier.nodes:
        width = 1 << ((old - start).bit_length() - 1)
        old_nodes[(start, start + width)] = node
        start += width

    def node(a: int, b: int) -> bytes:
        if b <= old:
            return old_nodes[(a, b)]
        return _subtree(leaves, old, a, b)

    def subproof(m: int, a: int, b: int, complete: bool) -> list[bytes]:
        n = b - a
        if m == n:
            return [] if complete else [node(a, b)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return [*subproof(m, a, a + k, complete), node(a + k, b)]
        return [*subproof(m - k, a + k, b, False), node(a, a + k)]

    if old in (0, new):
        return []
    return subproof(old, 0, new, True)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does `proof` show leaf hash `leaf` at `index` in the tree of `size` with `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: does `proof` show the tree of `old_size` is a prefix of the one of `new_size`?"""
    if old_size < 0 or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
