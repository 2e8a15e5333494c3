import datetime as dt
import uuid

from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class CareGroup(SQLModel, table=True):
    """A care group (CPTS, MSP, network): the tenant of memberships, patients and threads."""

    __tablename__ = "care_group"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    # None when created by an operator command (the system actor).
    created_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
