import datetime as dt
import uuid

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime


class AuditEntry(SQLModel, table=True):
    """One entry of the audit log: a leaf of the RFC 9162 tree (see audit/leaf.py).

    Append-only, enforced by database triggers (migration 0002_audit_log). ``position`` is
    gap-free from 0: assigned under the lock of ``audit_head``, never by a sequence. ``event``
    is the RFC 8785 canonical JSON of the FHIR R4 AuditEvent, byte for byte what the leaf's
    commitment hashes (after ``nonce``). The other columns repeat parts of it for the
    auditors' queries; patients are internal ids only.
    """

    __tablename__ = "audit_entry"
    __table_args__ = (
        sa.Index("ix_audit_entry_group_position", "group_id", "position"),
        sa.Index("ix_audit_entry_group_patient", "group_id", "patient_id", "position"),
        sa.Index("ix_audit_entry_group_actor", "group_id", "actor_id", "position"),
        sa.Index("ix_audit_entry_group_action", "group_id", "action", "position"),
        sa.Index("ix_audit_entry_group_outcome", "group_id", "outcome", "position"),
        sa.Index("ix_audit_entry_recorded", "recorded"),
    )

    position: int = Field(
        sa_type=sa.BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    recorded: dt.datetime = Field(sa_type=UTCDateTime)
    kind: str = Field(max_length=32)
    action: str = Field(max_length=1)
    outcome: int = Field(sa_type=sa.SmallInteger)
    group_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None
    event_id: uuid.UUID
    event: str = Field(sa_type=sa.Text)
    nonce: bytes
    leaf: bytes
    leaf_hash: bytes
