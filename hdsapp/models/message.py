import datetime as dt
import uuid

from sqlalchemy import LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class Message(SQLModel, table=True):
    """One message of a thread: ``seq`` from 1 with no gaps; ``client_id`` makes a retried
    post idempotent (unique per thread); ``body`` sealed with the thread's data key, bound to
    group, thread, message id and author. Never edited: a correction is a new message that
    ``corrects`` the earlier one."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("thread_id", "seq", name="uq_message_thread_seq"),
        UniqueConstraint("thread_id", "client_id", name="uq_message_thread_client_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    thread_id: uuid.UUID = Field(foreign_key="thread.id")
    seq: int
    author_id: uuid.UUID = Field(foreign_key="user_account.id")
    client_id: str = Field(max_length=64)
    body: bytes = Field(sa_type=LargeBinary)  # sealed (message)
    corrects_id: uuid.UUID | None = Field(default=None, foreign_key="message.id")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
