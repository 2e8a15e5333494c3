from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.chunks import (
    MAX_CHUNK_SIZE,
    open_chunks,
    read_sealed_chunks,
    seal_chunks,
    sealed_size,
)
from hdsapp.core.crypto.envelope import OVERHEAD_BYTES, key_lookup, seal
from hdsapp.core.crypto.errors import IntegrityError

KEY = bytes(range(32))
AD = AssociatedData(RecordKind.ATTACHMENT, group_id="g1", thread_id="t1", record_id="a1")
SIZE = 16


def sealed(data: bytes, *, aad: AssociatedData = AD, chunk_size: int = SIZE) -> list[bytes]:
    return list(seal_chunks(KEY, [data], key_version=1, aad=aad, chunk_size=chunk_size))


def opened(envelopes: list[bytes], *, aad: AssociatedData = AD) -> bytes:
    return b"".join(open_chunks(KEY, envelopes, aad=aad))


@settings(deadline=None)
@given(st.lists(st.binary(max_size=70), max_size=8), st.integers(1, 40))
def test_round_trip_any_split(pieces: list[bytes], chunk_size: int) -> None:
    data = b"".join(pieces)
    envelopes = list(seal_chunks(KEY, pieces, key_version=1, aad=AD, chunk_size=chunk_size))
    assert all(len(e) == chunk_size + OVERHEAD_BYTES for e in envelopes[:-1])
    assert sum(map(len, envelopes)) == sealed_size(len(data), chunk_size=chunk_size)
    assert opened(envelopes) == data


@pytest.mark.parametrize("size", [0, 1, MAX_CHUNK_SIZE - 1, MAX_CHUNK_SIZE, 2 * MAX_CHUNK_SIZE + 5])
def test_round_trip_default_chunk_size(size: int) -> None:
    data = os.urandom(size)
    pieces = [data[i : i + 100_000] for i in range(0, size, 100_000)]
    envelopes = list(seal_chunks(KEY, pieces, key_version=1, aad=AD))
    assert len(envelopes) == max(1, -(-size // MAX_CHUNK_SIZE))
    assert b"".join(open_chunks(key_lookup({1: KEY}), envelopes, aad=AD)) == data


def test_seal_is_lazy() -> None:
    def endless() -> object:
        while True:
            yield bytes(SIZE)

    stream = seal_chunks(KEY, endless(), key_version=1, aad=AD, chunk_size=SIZE)  # type: ignore[arg-type]
    assert [len(next(stream)) for _ in range(3)] == [SIZE + OVERHEAD_BYTES] * 3


DATA = bytes(range(SIZE * 4 + 3))  # five chunks


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda e: [e[1], e[0], *e[2:]], id="swap"),
        pytest.param(lambda e: e[::-1], id="reverse"),
        pytest.param(lambda e: [e[0], *e[2:]], id="drop-middle"),
        pytest.param(lambda e: e[1:], id="drop-first"),
        pytest.param(lambda e: e[:-1], id="truncate"),
        pytest.param(lambda e: e[:1], id="only-first"),
        pytest.param(lambda e: [e[0], *e], id="duplicate-first"),
        pytest.param(lambda e: [*e, e[-1]], id="duplicate-last"),
        pytest.param(lambda e: [*e[:2], e[1], *e[2:]], id="duplicate-middle"),
        pytest.param(lambda e: [], id="no-chunks"),
        pytest.param(lambda e: [*e[:-1], e[-1][:-1]], id="cut-last-byte"),
    ],
)
def test_stream_tampering_is_rejected(tamper: object) -> None:
    envelopes = sealed(DATA)
    assert len(envelopes) == 5
    with pytest.raises(IntegrityError):
        opened(tamper(envelopes))  # type: ignore[operator]


def test_extra_chunk_sealed_for_the_record_is_rejected() -> None:
    envelopes = sealed(DATA)
    extra = seal(KEY, b"more", key_version=1, aad=AD.for_chunk(5, last=True))
    with pytest.raises(IntegrityError):
        opened([*envelopes, extra])


def test_chunk_from_another_attachment_is_rejected() -> None:
    other = AssociatedData(RecordKind.ATTACHMENT, group_id="g1", thread_id="t1", record_id="a2")
    mine, theirs = sealed(DATA), sealed(DATA, aad=other)
    with pytest.raises(IntegrityError):
        opened([mine[0], theirs[1], *mine[2:]])


def test_unchunked_envelope_is_not_a_chunk() -> None:
    with pytest.raises(IntegrityError):
        opened([seal(KEY, DATA, key_version=1, aad=AD)])


def test_read_sealed_chunks_splits_a_file() -> None:
    envelopes = sealed(DATA)
    split = list(read_sealed_chunks(io.BytesIO(b"".join(envelopes)), chunk_size=SIZE))
    assert split == envelopes
    assert opened(split) == DATA


def test_read_sealed_chunks_handles_short_reads() -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = data

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            size = min(3, len(buffer))
            piece, self._data = self._data[:size], self._data[size:]
            buffer[: len(piece)] = piece
            return len(piece)

    envelopes = sealed(DATA)
    split = list(read_sealed_chunks(Trickle(b"".join(envelopes)), chunk_size=SIZE))  # type: ignore[arg-type]
    assert split == envelopes


@pytest.mark.parametrize("chunk_size", [0, MAX_CHUNK_SIZE + 1])
def test_chunk_size_bounds(chunk_size: int) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        sealed(DATA, chunk_size=chunk_size)
