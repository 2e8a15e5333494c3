"""The interface every root-key provider implements.

A provider holds the platform's root key and only ever wraps and unwraps other keys (group KEKs)
with it; the root key never leaves the provider. Implementations: ``local`` (key file),
``pkcs11`` (HSM or software token). A Vault Transit or KMIP provider fits the same four methods:
Vault's ``encrypt``/``decrypt`` with ``associated_data`` and ``rotate``; KMIP's Encrypt/Decrypt
with authenticated encryption additional data.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hdsapp.core.crypto.aad import AssociatedData


@runtime_checkable
class KeyProvider(Protocol):
    def wrap(self, plaintext_key: bytes, *, aad: AssociatedData) -> bytes:
        """Encrypt a key under the current root version, bound to ``aad``.

        The result names the root version it was made with, so it keeps unwrapping after a
        rotation until that version is destroyed.
        """
        ...

    def unwrap(self, wrapped: bytes, *, aad: AssociatedData) -> bytes:
        """Recover a key wrapped by ``wrap`` with the same ``aad``.

        Raises ``IntegrityError`` if it was altered or bound to another ``aad``,
        ``MissingKeyError`` if its root version is gone, ``ProviderError`` if the backend fails.
        """
        ...

    def rotate(self) -> int:
        """Create a new root version, make it current for ``wrap``, and return its number."""
        ...

    def describe(self) -> dict[str, object]:
        """Non-secret facts for status pages and logs: kind, versions, location. Never a key."""
        ...
