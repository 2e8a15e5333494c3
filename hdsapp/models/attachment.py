import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, LargeBinary
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow

DOCUMENT_TYPES = (
    "report",
    "prescription",
    "photo",
    "ecg",
    "imaging",
    "lab-result",
    "letter",
    "other",
)


class Attachment(SQLModel, table=True):
    """A document posted in a thread (with the message that carries it). The content is in the
    blob store as a sequence of sealed chunks (``blob_key``, ``chunk_size``); the file name is
    sealed here; the type is the one detected from the bytes (magic numbers)."""

    __tablename__ = "attachment"
    __table_args__ = (
        CheckConstraint(
            "document_type IN ('report', 'prescription', 'photo', 'ecg', 'imaging', "
            "'lab-result', 'letter', 'other')",
            name="document_type",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    thread_id: uuid.UUID = Field(foreign_key="thread.id", index=True)
    message_id: uuid.UUID = Field(foreign_key="message.id", unique=True)
    uploaded_by: uuid.UUID = Field(foreign_key="user_account.id")
    document_type: str = Field(max_length=16)
    content_type: str = Field(max_length=64)
    size: int
    filename: bytes = Field(sa_type=LargeBinary)  # sealed (attachment, no chunk index)
    blob_key: str = Field(max_length=200)
    chunk_size: int
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
