"""Leaf data format, version 1."""

import hashlib
import struct
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from audit.leaf import (
    NONCE_SIZE,
    Leaf,
    LeafError,
    event_commitment,
    event_outcome,
    instant_ms,
    leaf_for_event,
    new_nonce,
    unpack,
)

COMMITMENT = bytes(range(32))
EVENT = {"resourceType": "AuditEvent", "recorded": "2025-03-04T10:11:12.345+01:00", "outcome": "4"}


def test_layout() -> None:
    leaf = Leaf(
        position=258, time_ms=1741079472345, kind="rest.read", outcome=4, commitment=COMMITMENT
    )
    data = leaf.encode()
    assert data == (
        b"\x01"
        + (258).to_bytes(8, "big")
        + (1741079472345).to_bytes(8, "big")
        + b"\x09rest.read"
        + b"\x04"
        + COMMITMENT
    )
    assert len(data) == 51 + len("rest.read")
    assert Leaf.decode(data) == leaf


@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.from_regex(r"[a-z0-9._-]{1,32}", fullmatch=True),
    st.sampled_from([0, 4, 8, 12]),
    st.binary(min_size=32, max_size=32),
)
def test_round_trip(
    position: int, time_ms: int, kind: str, outcome: int, commitment: bytes
) -> None:
    leaf = Leaf(position, time_ms, kind, outcome, commitment)
    assert Leaf.decode(leaf.encode()) == leaf
    assert unpack(leaf.encode()) == (position, time_ms, kind, outcome, commitment)


def _raw(
    version: int = 1, kind: bytes = b"login", outcome: int = 0, tail: bytes = COMMITMENT
) -> bytes:
    return struct.pack(">BQQB", version, 1, 2, len(kind)) + kind + bytes((outcome,)) + tail


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter than its header"),
        (_raw()[:17], "shorter than its header"),
        (_raw(version=2), "version 2"),
        (_raw()[:-1], "not 56"),
        (_raw() + b"\x00", "not 56"),
        (_raw(kind=b""), "kind"),
        (_raw(kind=b"Login"), "kind"),
        (_raw(kind=b"log\xe9n"), "kind"),
        (_raw(kind=b"x" * 33), "kind"),
        (_raw(outcome=1), "outcome 1"),
    ],
)
def test_decode_is_strict(data: bytes, message: str) -> None:
    with pytest.raises(LeafError, match=message):
        unpack(data)
    with pytest.raises(LeafError, match=message):
        Leaf.decode(data)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((-1, 0, "a", 0, COMMITMENT), "64-bit"),
        ((2**64, 0, "a", 0, COMMITMENT), "64-bit"),
        ((0, 2**64, "a", 0, COMMITMENT), "64-bit"),
        ((0, 0, "a b", 0, COMMITMENT), "kind"),
        ((0, 0, "a", 3, COMMITMENT), "outcome 3"),
        ((0, 0, "a", 0, COMMITMENT[:31]), "commitment"),
    ],
)
def test_construction_is_checked(fields: tuple[int, int, str, int, bytes], message: str) -> None:
    with pytest.raises(LeafError, match=message):
        Leaf(*fields)


def test_commitment_is_sha256_of_nonce_then_jcs() -> None:
    nonce = bytes(32)
    event: dict[str, Any] = {"b": [1, 2.5, "é"], "a": None}
    assert event_commitment(event, nonce) == hashlib.sha256(nonce + rfc8785.dumps(event)).digest()
    assert rfc8785.dumps(event) == '{"a":null,"b":[1,2.5,"é"]}'.encode()


def test_commitment_refusals() -> None:
    with pytest.raises(LeafError, match="nonce"):
        event_commitment(EVENT, bytes(31))
    with pytest.raises(LeafError, match="RFC 8785"):
        event_commitment({"n": 2**60}, bytes(32))


def test_commitment_of_an_event_nested_too_deeply() -> None:
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(LeafError, match="RFC 8785"):
        event_commitment({"deep": deep}, bytes(32))


def test_new_nonce() -> None:
    assert len(new_nonce()) == NONCE_SIZE
    assert new_nonce() != new_nonce()


@pytest.mark.parametrize(
    ("instant", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.9999Z", 999),
        ("1970-01-01T01:00:00.5+01:00", 500),
        ("1969-12-31T19:00:00.001-05:00", 1),
        ("2025-03-04T10:11:12.345+01:00", 1741079472345),
    ],
)
def test_instant_ms(instant: str, ms: int) -> None:
    assert instant_ms(instant) == ms


@pytest.mark.parametrize(
    ("instant", "message"),
    [
        (None, "not a FHIR instant"),
        (1741079472345, "not a FHIR instant"),
        ("2025-03-04", "not a FHIR instant"),
        ("2025-03-04T10:11:12", "not a FHIR instant"),
        ("2025-03-04T10:11Z", "not a FHIR instant"),
        ("2025-03-04 10:11:12Z", "not a FHIR instant"),
        ("\uff12025-03-04T10:11:12Z", "not a FHIR instant"),  # fullwidth digit
        ("2025-02-30T10:11:12Z", "day is out of range"),
        ("2025-03-04T10:11:12+24:00", "offset"),
        ("1969-12-31T23:59:59.999Z", "before 1970"),
    ],
)
def test_instant_ms_refusals(instant: object, message: str) -> None:
    with pytest.raises(LeafError, match=message):
        instant_ms(instant)


@pytest.mark.parametrize("code", [None, 0, "1", "", ["0"], {"0": 1}])
def test_event_outcome_refusals(code: object) -> None:
    with pytest.raises(LeafError, match=r"AuditEvent\.outcome"):
        event_outcome({"outcome": code})


def test_leaf_for_event() -> None:
    nonce = new_nonce()
    leaf = leaf_for_event(position=7, kind="rest.read", event=EVENT, nonce=nonce)
    assert leaf == Leaf(7, 1741079472345, "rest.read", 4, event_commitment(EVENT, nonce))


def test_many_distinct_kinds_are_all_checked() -> None:
    # Past the remembered few, every kind is still checked, one by one.
    for n in range(300):
        kind = f"k{n}"
        assert unpack(Leaf(0, 0, kind, 0, COMMITMENT).encode())[2] == kind
    with pytest.raises(LeafError, match="kind"):
        unpack(_raw(kind=b"K300"))
