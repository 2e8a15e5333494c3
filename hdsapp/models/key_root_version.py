import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class KeyRootVersion(SQLModel, table=True):
    """A version of the provider's root key, as the key store knows it: bookkeeping only (the
    key itself never leaves the provider). ``retired`` once a newer version exists,
    ``destroyed`` once the provider has deleted it (hdsapp.keys, "destroy-old")."""

    __tablename__ = "key_root_version"
    __table_args__ = (
        sa.CheckConstraint("status IN ('active', 'retired', 'destroyed')", name="status"),
    )

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    provider: str = Field(max_length=16)
    status: str = Field(default="active", max_length=9)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    retired_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    destroyed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
