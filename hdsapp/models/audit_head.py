import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime

HEAD_ID = 1


class AuditHead(SQLModel, table=True):
    """The one row that says how large the audit tree is, with its compact range (the
    roots of the perfect subtrees covering [0, tree_size), audit/compact_range.py).

    Appends lock it (``SELECT ... FOR UPDATE``) to take the next position, which keeps
    positions gap-free across processes. Triggers refuse DELETE and any UPDATE that does not
    grow ``tree_size``.
    """

    __tablename__ = "audit_head"
    __table_args__ = (sa.CheckConstraint(f"id = {HEAD_ID}", name="single_row"),)

    id: int = Field(
        default=HEAD_ID,
        sa_type=sa.SmallInteger,
        primary_key=True,
        sa_column_kwargs={"autoincrement": False},
    )
    tree_size: int = Field(sa_type=sa.BigInteger)
    compact: bytes
    updated_at: dt.datetime = Field(sa_type=UTCDateTime)
