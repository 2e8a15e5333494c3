import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, Index, LargeBinary
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow

THREAD_PRIORITIES = ("routine", "urgent")
THREAD_STATUSES = ("open", "closed", "archived")


class Thread(SQLModel, table=True):
    """A case thread of a care group about one patient: a patient of the group
    (``patient_id``, reference ``Patient/{id}``) or one on an external FHIR server (absolute
    ``patient_reference``, never fetched). The title is sealed with the thread's data key.

    ``last_seq`` is the seq of the newest message: posting locks this row (``FOR NO KEY
    UPDATE`` on PostgreSQL; SQLite transactions start with ``BEGIN IMMEDIATE``) and takes the
    next number, so seqs are gap-free and never fork, serialised per thread only.
    """

    __tablename__ = "thread"
    __table_args__ = (
        CheckConstraint("priority IN ('routine', 'urgent')", name="priority"),
        CheckConstraint("status IN ('open', 'closed', 'archived')", name="status"),
        Index("ix_thread_group_activity", "group_id", "last_activity_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="care_group.id")
    patient_id: uuid.UUID | None = Field(default=None, foreign_key="patient.id", index=True)
    patient_reference: str = Field(max_length=2048)
    title: bytes = Field(sa_type=LargeBinary)  # sealed (thread_title)
    priority: str = Field(default="routine", max_length=16)
    status: str = Field(default="open", max_length=16)
    last_seq: int = Field(default=0)
    last_activity_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: uuid.UUID = Field(foreign_key="user_account.id")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1)
