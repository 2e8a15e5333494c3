"""Strict base64: exactly one accepted text per byte string."""

import base64
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit import b64

ALPHABET = string.ascii_letters + string.digits + "+/="


@given(st.binary(max_size=40))
def test_round_trip(data: bytes) -> None:
    assert b64.encode(data) == base64.b64encode(data).decode()
    assert b64.decode(b64.encode(data)) == data


@given(st.text(alphabet=ALPHABET, max_size=12))
def test_only_the_canonical_text_is_accepted(text: str) -> None:
    try:
        data = b64.decode(text)
    except ValueError:
        return
    assert b64.encode(data) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [("AB==", "not canonical"), ("AAF=", "not canonical"), ("0000=", "not canonical"),
     ("AA", "not valid"),
     ("A A=", "not valid"), ("é", "not valid"), ("AAAA\n", "not valid"), ("=AAA", "not valid")],
)  # fmt: skip
def test_refusals(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        b64.decode(text)
