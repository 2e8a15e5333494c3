"""The key hierarchy: root key (provider) -> group KEK -> thread DEK -> content.

Wrapped keys are ordinary sealed values whose associated data names the key's place in the
hierarchy, so a wrapped key moved to another group, thread or version fails to unwrap:

- a group KEK is wrapped by the provider with ``kek_aad(group_id, kek_version)``;
- a thread DEK is sealed under its group's KEK (envelope v1, key version = KEK version) with
  ``dek_aad(group_id, thread_id, kek_version, dek_version)``.

Rotation re-wraps (``rewrap_*``) without touching content sealed under the keys.
"""

from __future__ import annotations

import os

from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.envelope import (
    KEY_BYTES,
    Key,
    KeyLookup,
    key_version_of,
    open_envelope,
    seal,
)
from hdsapp.core.crypto.errors import IntegrityError
from hdsapp.core.crypto.providers.base import KeyProvider


def generate_data_key() -> bytes:
    """A fresh 256-bit key from the OS CSPRNG, for a KEK, a DEK or a blind-index key."""
    return os.urandom(KEY_BYTES)


def kek_aad(*, group_id: str, kek_version: int) -> AssociatedData:
    return AssociatedData(RecordKind.WRAPPED_KEK, group_id=group_id, kek_version=kek_version)


def dek_aad(*, group_id: str, thread_id: str, kek_version: int, dek_version: int) -> AssociatedData:
    return AssociatedData(
        RecordKind.WRAPPED_DEK,
        group_id=group_id,
        thread_id=thread_id,
        kek_version=kek_version,
        dek_version=dek_version,
    )


def wrap_group_kek(provider: KeyProvider, kek: bytes, *, group_id: str, kek_version: int) -> bytes:
    _check_key(kek)
    return provider.wrap(kek, aad=kek_aad(group_id=group_id, kek_version=kek_version))


def unwrap_group_kek(
    provider: KeyProvider, wrapped: bytes, *, group_id: str, kek_version: int
) -> bytes:
    kek = provider.unwrap(wrapped, aad=kek_aad(group_id=group_id, kek_version=kek_version))
    return _checked_unwrapped(kek)


def rewrap_group_kek(
    provider: KeyProvider, wrapped: bytes, *, group_id: str, kek_version: int
) -> bytes:
    """Re-wrap a KEK under the provider's current root version (after ``provider.rotate()``)."""
    kek = unwrap_group_kek(provider, wrapped, group_id=group_id, kek_version=kek_version)
    return wrap_group_kek(provider, kek, group_id=group_id, kek_version=kek_version)


def wrap_thread_dek(
    kek: Key, dek: bytes, *, group_id: str, thread_id: str, kek_version: int, dek_version: int
) -> bytes:
    """Seal ``dek`` under ``kek`` (version ``kek_version``) for one thread and DEK version."""
    _check_key(dek)
    aad = dek_aad(
        group_id=group_id, thread_id=thread_id, kek_version=kek_version, dek_version=dek_version
    )
    return seal(kek, dek, key_version=kek_version, aad=aad)


def unwrap_thread_dek(
    kek: Key | KeyLookup, wrapped: bytes, *, group_id: str, thread_id: str, dek_version: int
) -> bytes:
    """Recover a thread DEK; ``kek`` may be a lookup by KEK version (read from ``wrapped``)."""
    # The KEK version is in the authenticated header already; naming it in the AD too keeps the
    # AD a complete description of the wrapped key's place, whichever key opens it.
    aad = dek_aad(
        group_id=group_id,
        thread_id=thread_id,
        kek_version=key_version_of(wrapped),
        dek_version=dek_version,
    )
    return _checked_unwrapped(open_envelope(kek, wrapped, aad=aad))


def rewrap_thread_dek(
    old_kek: Key | KeyLookup,
    new_kek: Key,
    wrapped: bytes,
    *,
    group_id: str,
    thread_id: str,
    dek_version: int,
    new_kek_version: int,
) -> bytes:
    """Move a DEK from an old KEK version to ``new_kek_version`` (group KEK rotation)."""
    dek = unwrap_thread_dek(
        old_kek, wrapped, group_id=group_id, thread_id=thread_id, dek_version=dek_version
    )
    return wrap_thread_dek(
        new_kek,
        dek,
        group_id=group_id,
        thread_id=thread_id,
        kek_version=new_kek_version,
        dek_version=dek_version,
    )


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError("keys must be 32 bytes")


def _checked_unwrapped(key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise IntegrityError("unwrapped key has the wrong length")
    return key
