"""RFC 6962 tree hash and proofs, checked against the RFC's recursive definitions."""

from __future__ import annotations

import hashlib

import pytest

from workbench.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    TreeLevels,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)


def mth(data: list[bytes]) -> bytes:
    """MTH straight from RFC 6962 section 2.1."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(data[:k]) + mth(data[k:])).digest()


def test_known_values():
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()


@pytest.mark.parametrize("n", range(0, 70))
def test_roots_match_the_rfc_definition(n):
    data = [f"leaf {i}".encode() for i in range(n)]
    leaves = [leaf_hash(d) for d in data]
    compact = CompactRange()
    compact.extend(leaves)
    assert root_of(leaves) == compact.root() == mth(data)
    again = CompactRange.from_bytes(compact.size, compact.to_bytes())
    assert again.root() == compact.root()


def test_all_proofs_up_to_33_leaves():
    for n in range(1, 34):
        data = [bytes([i]) for i in range(n)]
        leaves = [leaf_hash(d) for d in data]
        tree = TreeLevels(leaves)
        root = tree.root()
        for m in range(n):
            proof = tree.inclusion_proof(m)
            assert verify_inclusion(leaves[m], m, n, proof, root)
            if n > 1:
                assert not verify_inclusion(leaves[m], (m + 1) % n, n, proof, root)
                assert not verify_inclusion(leaf_hash(b"forged"), m, n, proof, root)
        for m in range(0, n + 1):
            proof = tree.consistency_proof(m)
            assert verify_consistency(m, n, mth(data[:m]), root, proof), (m, n)
            if 0 < m < n:
                assert not verify_consistency(m, n, mth(data[1:m + 1]), root, proof)
                assert not verify_consistency(m, n, mth(data[:m]), mth(data[:n - 1]) if n > m + 1 else b"x" * 32,
                                              proof)


def test_bad_arguments_are_rejected_not_crashing():
    leaves = [leaf_hash(b"a"), leaf_hash(b"b")]
    tree = TreeLevels(leaves)
    assert not verify_inclusion(leaves[0], 2, 2, [], tree.root())
    assert not verify_consistency(3, 2, tree.root(), tree.root(), [])
    with pytest.raises(IndexError):
        tree.inclusion_proof(5)
    with pytest.raises(ValueError):
        CompactRange(3, [b"x" * 32])
