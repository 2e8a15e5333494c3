"""Streaming seal and open of large values (attachments) as a sequence of envelopes.

Each chunk of at most ``chunk_size`` plaintext bytes is a v1 envelope whose associated data is the
record's identity plus the chunk index and a last-chunk flag. Opening checks index ``i`` for the
``i``-th envelope and "last" only for the final one, so reordered, dropped, duplicated or
truncated chunks, and chunks spliced from another record, all fail. A value always has at least
one chunk (an empty value is one empty last chunk), so cutting every chunk is detected too.

Both directions are generators holding one chunk at a time. Opening yields plaintext before the
end of the stream is verified: write it somewhere provisional and only act on it once the
iterator is exhausted without error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from hdsapp.core.crypto.aad import AssociatedData
from hdsapp.core.crypto.envelope import OVERHEAD_BYTES, Key, KeyLookup, open_envelope, seal
from hdsapp.core.crypto.errors import IntegrityError

MAX_CHUNK_SIZE = 1024 * 1024


def seal_chunks(
    key: Key,
    plaintext: Iterable[bytes],
    *,
    key_version: int,
    aad: AssociatedData,
    chunk_size: int = MAX_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Seal a stream of plaintext pieces of any size; yields one envelope per chunk."""
    _check_chunk_size(chunk_size)
    index = 0
    pending: bytes | None = None  # held back until we know whether it is the last chunk
    for piece in _rechunk(plaintext, chunk_size):
        if pending is not None:
            yield seal(key, pending, key_version=key_version, aad=aad.for_chunk(index, last=False))
            index += 1
        pending = piece
    yield seal(key, pending or b"", key_version=key_version, aad=aad.for_chunk(index, last=True))


def open_chunks(
    key: Key | KeyLookup, envelopes: Iterable[bytes], *, aad: AssociatedData
) -> Iterator[bytes]:
    """Open the envelopes of one record in order; yields the plaintext of each chunk."""
    index = 0
    iterator = iter(envelopes)
    current = next(iterator, None)
    if current is None:
        raise IntegrityError("no chunks")
    while current is not None:
        following = next(iterator, None)
        chunk_aad = aad.for_chunk(index, last=following is None)
        yield open_envelope(key, current, aad=chunk_aad)
        index += 1
        current = following


def read_sealed_chunks(stream: BinaryIO, *, chunk_size: int = MAX_CHUNK_SIZE) -> Iterator[bytes]:
    """Split the concatenated output of ``seal_chunks`` (e.g. a file) back into envelopes.

    Every chunk but the last is exactly ``chunk_size + OVERHEAD_BYTES`` long, so no framing is
    stored; the reader must use the ``chunk_size`` the writer used.
    """
    _check_chunk_size(chunk_size)
    size = chunk_size + OVERHEAD_BYTES
    while True:
        block = bytearray()
        # Unbuffered streams and pipes may return short reads before the end.
        while len(block) < size and (data := stream.read(size - len(block))):
            block += data
        if not block:
            return
        yield bytes(block)


def sealed_size(plaintext_size: int, *, chunk_size: int = MAX_CHUNK_SIZE) -> int:
    """Bytes that ``seal_chunks`` produces for a value of ``plaintext_size`` bytes."""
    _check_chunk_size(chunk_size)
    chunks = max(1, -(-plaintext_size // chunk_size))
    return plaintext_size + chunks * OVERHEAD_BYTES


def _rechunk(pieces: Iterable[bytes], chunk_size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= chunk_size:
            yield bytes(buffer[:chunk_size])
            del buffer[:chunk_size]
    if buffer:
        yield bytes(buffer)


def _check_chunk_size(chunk_size: int) -> None:
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be in [1, {MAX_CHUNK_SIZE}]")
