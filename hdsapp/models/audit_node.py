import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class AuditNode(SQLModel, table=True):
    """The hash of a perfect subtree of the audit tree: leaves [index * 2**level,
    (index + 1) * 2**level), for level >= 1 (level 0 is ``audit_entry.leaf_hash``).

    Written once, when the subtree's last leaf is appended, so any proof or root costs
    O(log n) reads. Append-only like the entries.
    """

    __tablename__ = "audit_node"

    level: int = Field(
        sa_type=sa.SmallInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    index: int = Field(
        sa_type=sa.BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    hash: bytes
