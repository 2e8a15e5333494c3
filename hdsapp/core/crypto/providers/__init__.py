"""Root-key providers: where the key that wraps every group KEK lives."""

from hdsapp.core.crypto.providers.base import KeyProvider

__all__ = ["KeyProvider"]
