import datetime as dt
import uuid

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class BlindIndexKey(SQLModel, table=True):
    """A care group's blind-index key (HMAC key of hdsapp.core.crypto.blind_index), wrapped by
    the root key like a KEK but under associated data of its own, so it can never pass for
    one. ``root_version`` is the root version that wraps it."""

    __tablename__ = "blind_index_key"

    group_id: uuid.UUID = Field(primary_key=True)
    version: int = Field(default=1)
    wrapped: bytes = Field(sa_type=sa.LargeBinary)
    root_version: int = Field(index=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
