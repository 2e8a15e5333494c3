"""Writes envelope_v1_vectors.json: run once, commit, never regenerate for format v1.

    .venv/bin/python -m tests.core.crypto.golden_vectors

The vectors pin the envelope layout, the associated-data encoding and the AES-GCM use together;
test_golden_vectors.py checks every stored envelope still opens and re-encodes byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.envelope import _seal_with_nonce

VECTORS_PATH = Path(__file__).with_name("envelope_v1_vectors.json")

CASES: list[dict[str, Any]] = [
    {
        "description": "empty message",
        "key": bytes(range(32)),
        "key_version": 1,
        "nonce": bytes(12),
        "aad": {"kind": "message", "group_id": "g1", "thread_id": "t1", "record_id": "m1"},
        "plaintext": b"",
    },
    {
        "description": "message with author, UTF-8 body",
        "key": bytes(range(32)),
        "key_version": 2,
        "nonce": bytes(range(12)),
        "aad": {
            "kind": "message",
            "group_id": "3f1c0a52-8a7e-4c1e-9d1b-2a0f4b6c7d8e",
            "thread_id": "42",
            "record_id": "1001",
            "author_id": "user-é",
        },
        "plaintext": "Pouvez-vous passer voir Mme Lefèvre demain ? ECG joint.".encode(),
    },
    {
        "description": "middle chunk of an attachment",
        "key": bytes([0xA5] * 32),
        "key_version": 4_294_967_295,
        "nonce": bytes([0xFF] * 12),
        "aad": {
            "kind": "attachment",
            "group_id": "g1",
            "thread_id": "t1",
            "record_id": "a7",
            "chunk_index": 3,
            "last_chunk": False,
        },
        "plaintext": bytes(range(256)) * 2,
    },
    {
        "description": "last chunk of an attachment",
        "key": bytes([0xA5] * 32),
        "key_version": 9,
        "nonce": bytes(range(100, 112)),
        "aad": {
            "kind": "attachment",
            "group_id": "g1",
            "thread_id": "t1",
            "record_id": "a7",
            "chunk_index": 4,
            "last_chunk": True,
        },
        "plaintext": b"%PDF-1.7 end",
    },
    {
        "description": "thread DEK wrapped under a group KEK",
        "key": bytes(range(32, 64)),
        "key_version": 3,
        "nonce": bytes(range(12, 24)),
        "aad": {
            "kind": "wrapped_dek",
            "group_id": "g1",
            "thread_id": "t1",
            "kek_version": 3,
            "dek_version": 5,
        },
        "plaintext": bytes(range(64, 96)),
    },
    {
        "description": "patient identity",
        "key": bytes(range(32)),
        "key_version": 0,
        "nonce": bytes(range(1, 13)),
        "aad": {"kind": "patient_identity", "group_id": "g1", "record_id": "p1"},
        "plaintext": b'{"ins":"184122A00400552","family":"D\'ARC-LEFEVRE"}',
    },
]


def associated_data(fields: dict[str, Any]) -> AssociatedData:
    return AssociatedData(**{**fields, "kind": RecordKind(fields["kind"])})


def build() -> list[dict[str, Any]]:
    vectors = []
    for case in CASES:
        aad = associated_data(case["aad"])
        envelope = _seal_with_nonce(
            case["key"],
            case["plaintext"],
            key_version=case["key_version"],
            aad=aad,
            nonce=case["nonce"],
        )
        vectors.append(
            {
                "description": case["description"],
                "key": case["key"].hex(),
                "key_version": case["key_version"],
                "nonce": case["nonce"].hex(),
                "aad": case["aad"],
                "aad_encoded": aad.encode().hex(),
                "plaintext": case["plaintext"].hex(),
                "envelope": envelope.hex(),
            }
        )
    return vectors


def main() -> None:
    document = {
        "format": "hdsapp envelope v1",
        "layout": "0x01 | key version u32 BE | nonce 12 | AES-256-GCM ciphertext | tag 16",
        "gcm_associated_data": "envelope[0:5] || aad_encoded",
        "vectors": build(),
    }
    VECTORS_PATH.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
