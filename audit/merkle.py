"""RFC 9162 §2.1 Merkle tree over SHA-256: hashes, roots, proofs.

Proofs are generated from a `HashSource`, so a store of tiles can serve them with O(log n)
subtree reads; verification follows the RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms verbatim.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof, hash or size that does not verify."""


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of the leaves, level by level: carrying an odd last node up unchanged gives the
    same tree as RFC 9162's split at the largest power of two, without recursion."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        level = [
            _sha256(b"\x01" + a + b).digest() for a, b in zip(level[::2], level[1::2], strict=False)
        ]
        if odd is not None:
            level.append(odd)
    return level[0]


class HashSource(Protocol):
    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves[start:end], 0 <= start < end."""
        ...


class MemoryHashSource:
    """A `HashSource` over leaf hashes held in memory."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.leaf_hashes = leaf_hashes

    def subtree_hash(self, start: int, end: int) -> bytes:
        return root(self.leaf_hashes[start:end])


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(source: HashSource, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size])."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of size {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            proof.append(source.subtree_hash(lo + k, hi))
            hi = lo + k
        else:
            proof.append(source.subtree_hash(lo, lo + k))
            lo += k
    proof.reverse()
    return proof


def consistency_proof(source: HashSource, first: int, second: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(first, D[0:second])."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    proof: list[bytes] = []
    lo, hi, m, whole = 0, second, first, True
    while m < hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(source.subtree_hash(lo + k, hi))
            hi = lo + k
        else:
            proof.append(source.subtree_hash(lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        proof.append(source.subtree_hash(lo, hi))
    proof.reverse()
    return proof


def check_hashes(*hashes: bytes) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise ProofError(f"a hash is {len(h)} bytes long, not {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root that `proof` implies for `leaf` at `index`."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    check_hashes(leaf, *proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the proof has too many elements")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof has too few elements")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    check_hashes(root_hash)
    if root_from_inclusion_proof(index, size, leaf, proof) != root_hash:
        raise ProofError("the proof does not lead to the root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2. A first size of 0 is refused (nothing to prove), as an equal size
    with a non-empty proof is."""
    check_hashes(first_root, second_root, *proof)
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if first == second:
        if proof:
            raise ProofError("equal sizes take an empty proof")
        if first_root != second_root:
            raise ProofError("equal sizes but different roots")
        return
    if not proof:
        raise ProofError("the proof is empty")
    path = [first_root, *proof] if first & (first - 1) == 0 else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof has too many elements")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof has too few elements")
    if fr != first_root:
        raise ProofError("the proof does not lead to the first root")
    if sr != second_root:
        raise ProofError("the proof does not lead to the second root")
