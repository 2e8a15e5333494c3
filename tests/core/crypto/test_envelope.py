from __future__ import annotations

import dataclasses
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.envelope import (
    FORMAT_V1,
    HEADER_BYTES,
    OVERHEAD_BYTES,
    key_lookup,
    key_version_of,
    open_envelope,
    read_header,
    seal,
)
from hdsapp.core.crypto.errors import CryptoError, IntegrityError, MissingKeyError
from tests.core.crypto.helpers import assert_clean

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
AD = AssociatedData(
    RecordKind.MESSAGE, group_id="g1", thread_id="t1", record_id="m1", author_id="u1"
)
SAMPLE = seal(KEY, b"Mme Dupont, ECG normal", key_version=7, aad=AD)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1024, 65_536, 1024 * 1024])
def test_round_trip_sizes(size: int) -> None:
    plaintext = os.urandom(size)
    envelope = seal(KEY, plaintext, key_version=1, aad=AD)
    assert len(envelope) == size + OVERHEAD_BYTES
    assert open_envelope(KEY, envelope, aad=AD) == plaintext


@settings(deadline=None)
@given(st.binary(max_size=4096), st.integers(0, 2**32 - 1))
def test_round_trip(plaintext: bytes, version: int) -> None:
    envelope = seal(KEY, plaintext, key_version=version, aad=AD)
    assert key_version_of(envelope) == version
    assert open_envelope(KEY, envelope, aad=AD) == plaintext


def test_layout() -> None:
    header = read_header(SAMPLE)
    assert SAMPLE[0] == FORMAT_V1
    assert SAMPLE[1:5] == (7).to_bytes(4, "big")
    assert SAMPLE[5:HEADER_BYTES] == header.nonce
    assert header.encode() == SAMPLE[:HEADER_BYTES]


def test_accepts_a_prepared_cipher() -> None:
    assert open_envelope(AESGCM(KEY), SAMPLE, aad=AD) == b"Mme Dupont, ECG normal"
    assert open_envelope(KEY, seal(AESGCM(KEY), b"x", key_version=1, aad=AD), aad=AD) == b"x"


def test_lookup_picks_the_version() -> None:
    lookup = key_lookup({7: KEY, 8: OTHER_KEY})
    assert open_envelope(lookup, SAMPLE, aad=AD) == b"Mme Dupont, ECG normal"
    newer = seal(OTHER_KEY, b"y", key_version=8, aad=AD)
    assert open_envelope(lookup, newer, aad=AD) == b"y"


def test_unknown_version_is_a_missing_key() -> None:
    with pytest.raises(MissingKeyError, match="version 7"):
        open_envelope(key_lookup({1: KEY}), SAMPLE, aad=AD)


def test_wrong_key() -> None:
    with pytest.raises(IntegrityError):
        open_envelope(OTHER_KEY, SAMPLE, aad=AD)


def test_every_bit_flip_is_rejected() -> None:
    for bit in range(len(SAMPLE) * 8):
        tampered = bytearray(SAMPLE)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(IntegrityError):
            open_envelope(KEY, bytes(tampered), aad=AD)


@settings(deadline=None)
@given(st.binary(max_size=2048), st.data())
def test_bit_flips_in_nonce_ciphertext_and_tag_are_rejected(
    plaintext: bytes, data: st.DataObject
) -> None:
    envelope = bytearray(seal(KEY, plaintext, key_version=1, aad=AD))
    bits = data.draw(st.sets(st.integers(5 * 8, len(envelope) * 8 - 1), min_size=1, max_size=4))
    for bit in bits:
        envelope[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        open_envelope(KEY, bytes(envelope), aad=AD)


@settings(deadline=None)
@given(st.integers(0, len(SAMPLE) - 1))
def test_truncation_is_rejected(length: int) -> None:
    with pytest.raises(IntegrityError):
        open_envelope(KEY, SAMPLE[:length], aad=AD)


@settings(deadline=None)
@given(st.binary(min_size=1, max_size=64))
def test_extension_is_rejected(suffix: bytes) -> None:
    with pytest.raises(IntegrityError):
        open_envelope(KEY, SAMPLE + suffix, aad=AD)


@pytest.mark.parametrize("format_byte", [0x00, 0x02, 0xFF])
def test_unknown_format_byte(format_byte: int) -> None:
    with pytest.raises(IntegrityError, match="format"):
        open_envelope(KEY, bytes([format_byte]) + SAMPLE[1:], aad=AD)


def test_changed_version_is_rejected_even_with_the_key_in_hand() -> None:
    relabelled = SAMPLE[:1] + (8).to_bytes(4, "big") + SAMPLE[5:]
    with pytest.raises(IntegrityError):
        open_envelope(KEY, relabelled, aad=AD)


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": RecordKind.THREAD_TITLE},
        {"group_id": "g2"},
        {"thread_id": "t2"},
        {"thread_id": None},
        {"record_id": "m2"},
        {"author_id": "u2"},
        {"kek_version": 1},
        {"dek_version": 1},
        {"chunk_index": 0, "last_chunk": True},
    ],
)
def test_each_ad_field_is_bound(changes: dict[str, object]) -> None:
    moved = dataclasses.replace(AD, **changes)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        open_envelope(KEY, SAMPLE, aad=moved)


def test_envelope_moved_to_another_record_is_rejected() -> None:
    first = AssociatedData(RecordKind.MESSAGE, group_id="g", thread_id="t", record_id="1")
    second = dataclasses.replace(first, record_id="2")
    envelope_of_first = seal(KEY, b"for record 1", key_version=1, aad=first)
    with pytest.raises(IntegrityError):
        open_envelope(KEY, envelope_of_first, aad=second)


def test_nonce_is_never_a_parameter() -> None:
    with pytest.raises(TypeError):
        seal(KEY, b"", key_version=1, aad=AD, nonce=bytes(12))  # type: ignore[call-arg]


@pytest.mark.slow
def test_nonces_are_unique_over_a_million_seals() -> None:
    cipher = AESGCM(KEY)
    nonces = {seal(cipher, b"", key_version=1, aad=AD)[5:HEADER_BYTES] for _ in range(10**6)}
    assert len(nonces) == 10**6


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(24), bytes(33)])
def test_only_256_bit_keys(key: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        seal(key, b"x", key_version=1, aad=AD)


@pytest.mark.parametrize("version", [-1, 2**32])
def test_version_range(version: int) -> None:
    with pytest.raises(ValueError, match="key_version"):
        seal(KEY, b"x", key_version=version, aad=AD)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, len(SAMPLE) * 8 - 1))
def test_errors_carry_no_secret(bit: int) -> None:
    marker = b"PATIENT-MARKER-123"
    envelope = bytearray(seal(KEY, marker, key_version=1, aad=AD))
    envelope[bit // 8 % len(envelope)] ^= 1 << (bit % 8)
    for key in (KEY, key_lookup({})):
        with pytest.raises(CryptoError) as info:
            open_envelope(key, bytes(envelope), aad=AD)
        assert_clean(info.value, secrets=[marker, KEY, AD.encode()])
