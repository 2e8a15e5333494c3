import datetime as dt
import uuid

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class ThreadParticipant(SQLModel, table=True):
    """A member of a thread's circle of care. Removal keeps the row (``removed_at``); the
    policy reads it on every request, so a removed participant loses access at once.
    ``visible_from_seq``: 0 when the history is shared (the default), else the thread's last
    seq when they joined (they see only what follows)."""

    __tablename__ = "thread_participant"
    __table_args__ = (UniqueConstraint("thread_id", "user_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    thread_id: uuid.UUID = Field(foreign_key="thread.id")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    visible_from_seq: int = Field(default=0)
    added_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    added_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    removed_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    removed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
