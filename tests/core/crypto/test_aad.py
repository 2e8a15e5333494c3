from __future__ import annotations

import dataclasses
import inspect

import pytest
from hypothesis import given, settings

from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from tests.core.crypto.helpers import associated_data

MESSAGE = AssociatedData(
    RecordKind.MESSAGE, group_id="g1", thread_id="t1", record_id="m1", author_id="u1"
)


@settings(deadline=None)
@given(associated_data(), associated_data())
def test_encoding_is_injective(a: AssociatedData, b: AssociatedData) -> None:
    assert (a.encode() == b.encode()) == (a == b)


def test_encoding_is_length_prefixed_not_joined() -> None:
    # With a separator join these two would encode alike.
    left = AssociatedData(RecordKind.MESSAGE, group_id="a|b", thread_id="c")
    right = AssociatedData(RecordKind.MESSAGE, group_id="a", thread_id="b|c")
    assert left.encode() != right.encode()


def test_absent_differs_from_any_value() -> None:
    assert (
        AssociatedData(RecordKind.MESSAGE).encode()
        != AssociatedData(RecordKind.MESSAGE, group_id="\x00").encode()
    )


def test_encoding_bytes() -> None:
    ad = AssociatedData(RecordKind.ATTACHMENT, group_id="g", dek_version=2, chunk_index=1)
    assert ad.encode() == (
        b"\x01"
        + b"\x00\x00\x00\x0aattachment"
        + b"\x01\x00\x00\x00\x01g"
        + b"\x00\x00\x00"
        + b"\x00"
        + b"\x01\x00\x00\x00\x02"
        + b"\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00"
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"group_id": ""},
        {"kek_version": -1},
        {"dek_version": 2**32},
        {"kek_version": True},
        {"last_chunk": True},
        {"chunk_index": 0, "last_chunk": 1},
        {"chunk_index": -1},
        {"chunk_index": 2**64},
    ],
)
def test_invalid_fields_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must|needs"):
        dataclasses.replace(MESSAGE, **changes)  # type: ignore[arg-type]


def test_init_parameters_match_the_fields() -> None:
    # __init__ is hand-written for speed; a field it forgets would be left out of the encoding.
    init_fields = [f.name for f in dataclasses.fields(AssociatedData) if f.init]
    parameters = list(inspect.signature(AssociatedData.__init__).parameters)[1:]
    assert parameters == init_fields
    assert [f.name for f in dataclasses.fields(AssociatedData) if not f.init] == ["_encoded"]


def test_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MESSAGE.record_id = "m2"  # type: ignore[misc]
    assert hash(MESSAGE) == hash(dataclasses.replace(MESSAGE))


def test_kind_must_be_a_record_kind() -> None:
    with pytest.raises(TypeError):
        AssociatedData("message")  # type: ignore[arg-type]


def test_for_chunk() -> None:
    chunk = MESSAGE.for_chunk(3, last=True)
    assert (chunk.chunk_index, chunk.last_chunk, chunk.record_id) == (3, True, "m1")
    with pytest.raises(ValueError, match="already"):
        chunk.for_chunk(4, last=False)
