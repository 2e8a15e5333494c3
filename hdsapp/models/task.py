import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, Index, LargeBinary
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow

TASK_STATUSES = ("requested", "accepted", "in-progress", "completed", "cancelled")


class Task(SQLModel, table=True):
    """A FHIR Task of a thread: a description (sealed with the thread's data key), an assignee
    (a participant), a due date, and a status that moves only along valid transitions."""

    __tablename__ = "task"
    __table_args__ = (
        CheckConstraint(
            "status IN ('requested', 'accepted', 'in-progress', 'completed', 'cancelled')",
            name="status",
        ),
        Index("ix_task_assignee_status", "assignee_id", "status"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    thread_id: uuid.UUID = Field(foreign_key="thread.id", index=True)
    description: bytes = Field(sa_type=LargeBinary)  # sealed (task)
    assignee_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    due_date: dt.date | None = Field(default=None)
    status: str = Field(default="requested", max_length=16)
    created_by: uuid.UUID = Field(foreign_key="user_account.id")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1)
