"""Standalone verifiable-log library (RFC 9162 Merkle tree, C2SP checkpoints).

It imports only the standard library, `cryptography` and `rfc8785`, so that an auditor can
verify an export with this package alone: `python -m audit verify EXPORT --key VERIFIER_KEY`.

    merkle         hashes, roots, inclusion and consistency proofs (RFC 9162 §2.1)
    compact_range  the right border of a tree: O(log n) append, root without the leaves
    leaf           the leaf data format and the AuditEvent commitment
    note           C2SP signed notes, Ed25519 signer and verifier keys
    checkpoint     C2SP tlog-checkpoints
    export         the export document: builder and strict parser
    verify         the offline verifier
    b64            strict base64
"""
