"""Key management: rotation, destruction of old key versions, crypto-shredding, the start-up
self-check and status, on top of the key store (hdsapp.core.crypto.keyring)."""
