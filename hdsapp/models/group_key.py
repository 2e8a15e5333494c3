import datetime as dt
import uuid

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class GroupKey(SQLModel, table=True):
    """One version of a care group's key-encryption key (KEK), wrapped by the root key.

    ``root_version`` is the root version that wraps it (rotation re-wraps row by row and can
    resume). One ``active`` version per group wraps new data keys; ``retired`` ones still unwrap
    the data keys not yet re-wrapped; ``destroyed`` ones keep their row without key material.
    No key in clear: ``wrapped`` is an envelope v1 made by the provider, bound to (group,
    version) by its associated data.
    """

    __tablename__ = "group_key"
    __table_args__ = (
        sa.CheckConstraint("status IN ('active', 'retired', 'destroyed')", name="status"),
        sa.CheckConstraint(
            "(wrapped IS NULL) = (status = 'destroyed')"
            " AND (root_version IS NULL) = (status = 'destroyed')",
            name="destroyed_holds_nothing",
        ),
        sa.Index(
            "uq_group_key_active",
            "group_id",
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        ),
    )

    group_id: uuid.UUID = Field(primary_key=True)
    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    wrapped: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    root_version: int | None = Field(default=None, index=True)
    status: str = Field(default="active", max_length=9)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    retired_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    destroyed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
