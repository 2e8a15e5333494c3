"""The one exception hierarchy of the crypto module.

Messages are fixed strings or carry only non-secret metadata (a key version, a length, a file
path, an exception class name): never plaintext, key material, associated data or PINs, because
these exceptions end up in logs and traces.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class: catch this to handle any failure of the crypto module."""


class IntegrityError(CryptoError):
    """A sealed value or wrapped key failed authentication or is malformed.

    Raised for a wrong tag, a wrong key, changed associated data, an unknown format byte, a
    truncated or extended envelope, and chunks that are reordered, dropped or duplicated. The
    causes are deliberately not told apart: they are all "this is not what was sealed here".
    """


class MissingKeyError(CryptoError):
    """The key version an envelope names is unknown here or has been destroyed."""


class KeyFileError(CryptoError):
    """A local root key file is missing, malformed or readable by group/others."""


class ProviderError(CryptoError):
    """A key provider is misconfigured or its backend (token, KMS) failed."""
