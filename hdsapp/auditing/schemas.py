"""Request and response models of the auditor's API."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

AuditAction = Literal["C", "R", "U", "D", "E"]
AuditOutcome = Literal[0, 4, 8, 12]


@dataclass(frozen=True, kw_only=True)
class EntryFilter:
    """What an auditor asks of a group's log."""

    group_id: uuid.UUID
    patient_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None
    action: str | None = None
    outcome: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


class AuditEntryPublic(BaseModel):
    """One entry as an auditor sees it: the indexed facts and the whole AuditEvent."""

    index: int = Field(description="position in the log (the leaf index of the tree)")
    recorded: dt.datetime
    kind: str
    action: AuditAction
    outcome: int
    actor: uuid.UUID | None = Field(description="user id of the agent who acted, if any")
    patient: uuid.UUID | None = Field(description="internal id of the patient concerned")
    event: dict[str, Any] = Field(description="the FHIR R4 AuditEvent (IHE BALP)")


class AuditPage(BaseModel):
    items: list[AuditEntryPublic]
    next_cursor: str | None
    total: int | None = Field(default=None, description="matching entries, when asked for")


class InclusionProof(BaseModel):
    index: int
    tree_size: int
    leaf_hash: str = Field(description="standard base64")
    proof: list[str] = Field(description="RFC 9162 inclusion path, standard base64")


class ConsistencyProof(BaseModel):
    first: int
    second: int
    proof: list[str] = Field(description="RFC 9162 consistency proof, standard base64")


class CheckpointResult(BaseModel):
    """What ``hdsapp audit checkpoint`` and the scheduled signer report."""

    ok: bool
    entries: int
    checkpoint_size: int | None
    signed: bool


class LogReport(BaseModel):
    """What ``hdsapp audit verify`` reports; ``first_bad_index`` names the first entry that
    does not verify when the divergence is in one."""

    ok: bool
    entries: int
    checkpoint_size: int | None
    checkpoints: int
    key_pinned: bool
    error: str | None = None
    first_bad_index: int | None = None
    pending: int = Field(
        default=0, description="entries written but not yet placed by the sequencer"
    )
