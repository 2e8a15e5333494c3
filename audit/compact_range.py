"""The compact range of a tree: what the log keeps to append in O(log n) and to state its root
without rereading leaves, and what an export carries for the leaves before its range."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from audit.merkle import EMPTY_ROOT, HASH_SIZE, HashSource, check_hashes, node_hash


@dataclass(slots=True)
class CompactRange:
    """The roots of the perfect subtrees that make up leaves [0, size), largest first: one
    per set bit of size. Appending is O(log n) and the root needs no leaf reread."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.hashes) != self.size.bit_count():
            raise ValueError(f"a compact range of size {self.size} has one hash per set bit")
        check_hashes(*self.hashes)

    @classmethod
    def from_source(cls, source: HashSource, size: int) -> CompactRange:
        hashes: list[bytes] = []
        start = 0
        for bit in reversed(range(size.bit_length())):
            if size >> bit & 1:
                hashes.append(source.subtree_hash(start, start + (1 << bit)))
                start += 1 << bit
        return cls(size, hashes)

    def append(self, leaf: bytes) -> None:
        self.extend((leaf,))

    def extend(self, leaves: Iterable[bytes]) -> None:
        hashes, size = self.hashes, self.size
        pop, push, sha256 = hashes.pop, hashes.append, hashlib.sha256
        for leaf in leaves:
            # Each set low bit of size is a perfect subtree that the new leaf completes.
            node, carry = leaf, size
            while carry & 1:
                node = sha256(b"\x01" + pop() + node).digest()
                carry >>= 1
            push(node)
            size += 1
        self.size = size

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            r = node_hash(h, r)
        return r

    def encode(self) -> bytes:
        """uint64 big-endian size, then the hashes."""
        return self.size.to_bytes(8, "big") + b"".join(self.hashes)

    @classmethod
    def decode(cls, data: bytes) -> CompactRange:
        size = int.from_bytes(data[:8], "big")
        body = data[8:]
        if len(data) < 8 or len(body) != HASH_SIZE * size.bit_count():
            raise ValueError("a compact range is an 8-byte size, then one hash per set bit")
        return cls(size, [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)])
