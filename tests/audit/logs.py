"""A small audit log built in memory, and exports of it, for the export and verifier tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from audit import merkle
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.export import ExportEntry, build_export
from audit.leaf import leaf_for_event
from audit.note import Signer

ORIGIN = "hds.example/audit"


def audit_event(i: int) -> dict[str, Any]:
    """An AuditEvent shaped like IHE BALP PatientRead (or a denied attempt every third)."""
    return {
        "resourceType": "AuditEvent",
        "id": f"ae-{i}",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                 "code": "rest"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}],
        "action": "R",
        "recorded": f"2025-03-04T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}+01:00",
        "outcome": "4" if i % 3 == 0 else "0",
        "agent": [
            {
                "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                                     "code": "110152"}]},
                "requestor": True,
                "who": {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1",
                                       "value": f"8100000{i:05d}"}},
                "network": {"address": "192.0.2.10", "type": "2"},
            }
        ],
        "source": {"observer": {"display": "hdsapp"}},
        "entity": [{"what": {"reference": f"Patient/p{i % 7}"}}],
    }  # fmt: skip


@dataclass
class Log:
    signer: Signer = field(default_factory=lambda: Signer.generate(ORIGIN))
    events: list[dict[str, Any]] = field(default_factory=list)
    nonces: list[bytes] = field(default_factory=list)
    leaves: list[bytes] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)

    def append(self, event: dict[str, Any], nonce: bytes, leaf: bytes | None = None) -> None:
        position = len(self.leaves)
        if leaf is None:
            kind = "rest.read"
            leaf = leaf_for_event(position=position, kind=kind, event=event, nonce=nonce).encode()
        self.events.append(event)
        self.nonces.append(nonce)
        self.leaves.append(leaf)
        self.hashes.append(merkle.leaf_hash(leaf))

    def checkpoint(self, size: int, origin: str = ORIGIN, signer: Signer | None = None) -> str:
        body = Checkpoint(origin, size, merkle.root(self.hashes[:size]))
        return sign_checkpoint(body, [signer or self.signer])

    def export(
        self,
        start: int,
        end: int,
        sizes: Iterable[int] | None = None,
        withheld: Iterable[int] = (),
    ) -> dict[str, Any]:
        hidden = set(withheld)
        entries = [
            ExportEntry(self.leaves[i])
            if i in hidden
            else ExportEntry(self.leaves[i], self.events[i], self.nonces[i], f"urn:uuid:ae-{i}")
            for i in range(start, end)
        ]
        return build_export(
            origin=ORIGIN,
            verifier_keys=[str(self.signer.verifier)],
            start=start,
            entries=entries,
            checkpoints=[self.checkpoint(s) for s in (sizes or [len(self.leaves)])],
            source=merkle.MemoryHashSource(self.hashes),
        )


def make_log(n: int) -> Log:
    log = Log()
    for i in range(n):
        log.append(audit_event(i), i.to_bytes(32, "big"))
    return log


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False)
