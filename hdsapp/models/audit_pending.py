import datetime as dt
import uuid

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime


class AuditPending(SQLModel, table=True):
    """An entry written but not yet placed in the log (``HDS_AUDIT_MODE=sequencer``).

    Requests insert here in their own business transaction, with no lock shared between
    them; the sequencer (hdsapp.core.accesslog.sequence, run by the checkpoint task) moves
    batches into ``audit_entry`` at contiguous positions and deletes them from here. ``id``
    orders arrival only: it may have gaps and is never a position.
    """

    __tablename__ = "audit_pending"

    # SQLite assigns ids only to an INTEGER PRIMARY KEY.
    id: int | None = Field(
        default=None, sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
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
    commitment: bytes
