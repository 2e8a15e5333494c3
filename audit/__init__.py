"""Standalone verifiable-log library (RFC 9162 Merkle tree, C2SP checkpoints)."""
