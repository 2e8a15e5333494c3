import datetime as dt
import uuid

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class DataKey(SQLModel, table=True):
    """One version of a data key (DEK), wrapped by a version of its group's KEK.

    The owner is a case thread (``thread_id`` set, ``owner_id`` = thread id) or the group
    itself (``thread_id`` NULL, ``owner_id`` = group id: the key of the patient identities).
    ``seal_count`` counts the envelopes made with it, atomically; at ``HDS_DEK_MAX_SEALS`` the
    version is ``retired`` (it still opens) and the next one becomes ``active``. ``kek_version``
    says which KEK version wraps it, so a KEK rotation re-wraps row by row and can resume.
    Crypto-shredding deletes the rows (shred_ledger keeps the record).
    """

    __tablename__ = "data_key"
    __table_args__ = (
        sa.CheckConstraint("status IN ('active', 'retired')", name="status"),
        sa.CheckConstraint("seal_count >= 0", name="seal_count"),
        sa.CheckConstraint(
            "(thread_id IS NULL AND owner_id = group_id)"
            " OR (thread_id IS NOT NULL AND owner_id = thread_id)",
            name="owner",
        ),
        sa.Index(
            "uq_data_key_active",
            "owner_id",
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        ),
        sa.Index("ix_data_key_group_kek", "group_id", "kek_version"),
    )

    owner_id: uuid.UUID = Field(primary_key=True)
    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    group_id: uuid.UUID
    thread_id: uuid.UUID | None = Field(default=None, index=True)
    kek_version: int
    wrapped: bytes = Field(sa_type=sa.LargeBinary)
    seal_count: int = Field(default=0, sa_type=sa.BigInteger)
    status: str = Field(default="active", max_length=7)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    retired_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
