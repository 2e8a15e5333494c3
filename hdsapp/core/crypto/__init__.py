"""Encryption at rest: envelope encryption, key providers, blind indexes (DESIGN.md §5).

The one crypto module of the platform. Content is sealed with AES-256-GCM under a thread DEK
(``envelope``, ``chunks``), bound to its record by associated data (``aad``); DEKs are wrapped by
a group KEK, KEKs by the root key of a ``providers`` implementation (``keys``). Pure: no database;
the key store that persists wrapped keys builds on these functions.
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
