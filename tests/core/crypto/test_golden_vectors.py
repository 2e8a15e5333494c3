"""Envelope format v1 is frozen: these committed vectors must open, and re-encode, forever."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hdsapp.core.crypto.envelope import (
    HEADER_BYTES,
    EnvelopeHeader,
    _seal_with_nonce,
    open_envelope,
    read_header,
)
from tests.core.crypto.golden_vectors import VECTORS_PATH, associated_data

VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text())["vectors"]


def test_there_are_vectors() -> None:
    assert len(VECTORS) >= 6


@pytest.mark.parametrize("vector", VECTORS, ids=[v["description"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    key = bytes.fromhex(vector["key"])
    nonce = bytes.fromhex(vector["nonce"])
    plaintext = bytes.fromhex(vector["plaintext"])
    envelope = bytes.fromhex(vector["envelope"])
    aad = associated_data(vector["aad"])

    assert aad.encode().hex() == vector["aad_encoded"]
    assert open_envelope(key, envelope, aad=aad) == plaintext

    header = read_header(envelope)
    assert header == EnvelopeHeader(key_version=vector["key_version"], nonce=nonce)
    assert header.encode() == envelope[:HEADER_BYTES]

    # The documented layout, rebuilt with AESGCM alone, independently of envelope.py.
    body = AESGCM(key).encrypt(nonce, plaintext, envelope[:5] + aad.encode())
    assert envelope == bytes([1]) + vector["key_version"].to_bytes(4, "big") + nonce + body

    resealed = _seal_with_nonce(
        key, plaintext, key_version=vector["key_version"], aad=aad, nonce=nonce
    )
    assert resealed == envelope
