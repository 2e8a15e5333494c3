import datetime as dt
import uuid

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class BreakGlassGrant(SQLModel, table=True):
    """Time-boxed, read-only emergency access of a clinician of the group to a thread they do
    not take part in. The stated reason is in the audit entry of the grant (DCM 110127,
    purpose ETREAT), not here."""

    __tablename__ = "break_glass_grant"
    __table_args__ = (Index("ix_break_glass_grant_thread_user", "thread_id", "user_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    thread_id: uuid.UUID = Field(foreign_key="thread.id")
    user_id: uuid.UUID = Field(foreign_key="user_account.id")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime)
