import datetime as dt
import uuid

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class ReadPosition(SQLModel, table=True):
    """How far a user has read a thread: every message up to ``seq`` (never moves back)."""

    __tablename__ = "read_position"
    __table_args__ = (UniqueConstraint("thread_id", "user_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    thread_id: uuid.UUID = Field(foreign_key="thread.id")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    seq: int = Field(default=0)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
