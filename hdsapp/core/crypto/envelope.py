"""Envelope format v1: one AES-256-GCM sealed value, self-describing enough to open later.

Layout (big-endian)::

    offset  size  field
    0       1     format byte, 0x01
    1       4     key version (uint32): which version of the sealing key to open it with
    5       12    nonce, fresh from the OS CSPRNG on every seal
    17      n+16  AES-256-GCM ciphertext of the n plaintext bytes, then the 16-byte tag

The GCM associated data is ``envelope[0:5] || aad.encode()``: the header is authenticated, so a
changed format byte or key version fails to open even when the caller supplies the key directly,
and the record identity (``AssociatedData``) is authenticated without being stored.

Nonces are random 96-bit values generated here and never accepted from callers: a caller-chosen
nonce is the one way to break GCM outright. Random nonces stay safe for up to 2**32 seals per key
(NIST SP 800-38D); ``usage.py`` caps a data key well below that.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hdsapp.core.crypto.aad import MAX_U32, AssociatedData
from hdsapp.core.crypto.errors import IntegrityError, MissingKeyError

FORMAT_V1 = 0x01
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = 1 + 4 + NONCE_BYTES
OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES

# A key is either its 32 raw bytes or a ready AESGCM built from them: caches hold the latter so
# the per-message cost does not include key setup.
Key: TypeAlias = bytes | AESGCM
KeyLookup: TypeAlias = Callable[[int], Key]
"""Returns the key for a version, or raises ``MissingKeyError`` (destroyed or unknown)."""

_PREFIX = struct.Struct(">BI")


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """The clear part of an envelope: what is needed to find the key, nothing secret."""

    key_version: int
    nonce: bytes
    format: int = FORMAT_V1

    def encode(self) -> bytes:
        return _PREFIX.pack(self.format, self.key_version) + self.nonce


def read_header(envelope: bytes) -> EnvelopeHeader:
    """Parse the header without opening the envelope (nothing here is authenticated yet)."""
    key_version = _check_format(envelope)
    return EnvelopeHeader(key_version=key_version, nonce=bytes(envelope[5:HEADER_BYTES]))


def key_version_of(envelope: bytes) -> int:
    """The key version an envelope was sealed under, e.g. to find rows needing re-encryption."""
    return _check_format(envelope)


def seal(key: Key, plaintext: bytes, *, key_version: int, aad: AssociatedData) -> bytes:
    """Seal ``plaintext`` for the record ``aad`` names, under ``key`` (version ``key_version``)."""
    return _seal_with_nonce(
        key, plaintext, key_version=key_version, aad=aad, nonce=os.urandom(NONCE_BYTES)
    )


def open_envelope(key: Key | KeyLookup, envelope: bytes, *, aad: AssociatedData) -> bytes:
    """Open an envelope sealed for the record named by ``aad``.

    ``key`` is the key itself or a lookup called with the envelope's key version. Raises
    ``IntegrityError`` if anything was changed, ``MissingKeyError`` if the lookup has no such
    version.
    """
    key_version = _check_format(envelope)
    if callable(key):
        key = key(key_version)
    try:
        # A memoryview, not a slice: no copy of a large ciphertext before decrypting it.
        body = memoryview(envelope)[HEADER_BYTES:]
        return _cipher(key).decrypt(envelope[5:HEADER_BYTES], body, envelope[:5] + aad.encode())
    except InvalidTag:
        raise IntegrityError("envelope failed authentication") from None


def key_lookup(keys: dict[int, Key]) -> KeyLookup:
    """A ``KeyLookup`` over a mapping of version -> key."""

    def lookup(version: int) -> Key:
        try:
            return keys[version]
        except KeyError:
            raise MissingKeyError(f"no key for version {version}") from None

    return lookup


def _seal_with_nonce(
    key: Key, plaintext: bytes, *, key_version: int, aad: AssociatedData, nonce: bytes
) -> bytes:
    # Private on purpose: the only caller outside seal() is the golden-vector generator.
    if not 0 <= key_version <= MAX_U32:
        raise ValueError("key_version must be in [0, 2**32)")
    if len(nonce) != NONCE_BYTES:
        raise ValueError("nonce must be 12 bytes")
    prefix = _PREFIX.pack(FORMAT_V1, key_version)
    return prefix + nonce + _cipher(key).encrypt(nonce, plaintext, prefix + aad.encode())


def _check_format(envelope: bytes) -> int:
    """Check the length and format byte; return the key version."""
    if len(envelope) < OVERHEAD_BYTES:
        raise IntegrityError("envelope is too short")
    format_byte, key_version = _PREFIX.unpack_from(envelope)
    if format_byte != FORMAT_V1:
        raise IntegrityError(f"unsupported envelope format 0x{format_byte:02x}")
    result: int = key_version
    return result


def _cipher(key: Key) -> AESGCM:
    if isinstance(key, AESGCM):
        return key
    if len(key) != KEY_BYTES:
        # AESGCM would accept 16/24-byte keys; the platform promises AES-256 only.
        raise ValueError("key must be 32 bytes")
    return AESGCM(key)
