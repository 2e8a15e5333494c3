import datetime as dt
import uuid

from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class NotificationEvent(SQLModel, table=True):
    """Something a user must be told about (e.g. ``break-glass`` to the group's coordinators),
    recorded for the notification system to deliver. Ids only, no content."""

    __tablename__ = "notification_event"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="care_group.id")
    recipient_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    kind: str = Field(max_length=32)
    thread_id: uuid.UUID | None = Field(default=None, foreign_key="thread.id")
    subject_id: uuid.UUID | None = Field(default=None)
    actor_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
