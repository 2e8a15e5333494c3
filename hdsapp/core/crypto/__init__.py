"""Encryption at rest: envelope encryption, key providers, blind indexes (DESIGN.md §5).

The one crypto module of the platform, and a pure one: no database. Content is sealed with
AES-256-GCM under a thread DEK (``envelope``, ``chunks``), bound to its record by associated data
(``aad``); DEKs are wrapped by their group's KEK and KEKs by the root key of a provider
(``keys``, ``providers``).

For the key store built on top (tables, rotation, shredding):

- store per group ``(group_id, kek_version, wrapped_kek)`` from ``keys.wrap_group_kek``, and per
  thread ``(thread_id, dek_version, wrapped_dek, seal_count)`` from ``keys.wrap_thread_dek``;
  ``envelope.key_version_of`` reads which KEK/root version a wrapped key is under;
- cache unwrapped DEKs as ``AESGCM`` objects in a ``cache.KeyCache`` keyed by
  ``(thread_id, dek_version)`` with owners ``(group_id, thread_id)``;
- before a seal, ask ``usage.seal_limit_reached(seal_count, planned=n)``, then count the seals;
- root rotation: ``provider.rotate()`` then ``keys.rewrap_group_kek`` for every KEK row, then
  ``destroy_version`` on the provider; KEK rotation: ``keys.rewrap_thread_dek`` for the group's
  DEK rows; content re-encryption is a separate background job (open with the old DEK version,
  seal with the new one);
- shredding a thread or group: delete the wrapped key rows, then ``KeyCache.invalidate(owner)``
  in this process; other processes drop it within the cache TTL.
"""

from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.envelope import key_version_of, open_envelope, seal
from hdsapp.core.crypto.errors import (
    CryptoError,
    IntegrityError,
    KeyFileError,
    MissingKeyError,
    ProviderError,
)
from hdsapp.core.crypto.providers.base import KeyProvider

__all__ = [
    "AssociatedData",
    "CryptoError",
    "IntegrityError",
    "KeyFileError",
    "KeyProvider",
    "MissingKeyError",
    "ProviderError",
    "RecordKind",
    "key_version_of",
    "open_envelope",
    "seal",
]
