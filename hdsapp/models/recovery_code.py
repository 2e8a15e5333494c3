import datetime as dt
import uuid

from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class RecoveryCode(SQLModel, table=True):
    """A single-use second factor for when the authenticator is lost; only its hash is kept."""

    __tablename__ = "recovery_code"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    code_hash: str = Field(max_length=64, unique=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
