import datetime as dt
import uuid

from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class Invitation(SQLModel, table=True):
    """A single-use, expiring invitation to join a care group with a role.

    Addressed to an email or an RPPS number; only the SHA-256 of its token is kept.
    """

    __tablename__ = "invitation"
    __table_args__ = (
        CheckConstraint("role IN ('clinician', 'coordinator', 'auditor')", name="role"),
        CheckConstraint("email IS NOT NULL OR rpps IS NOT NULL", name="addressee"),
        CheckConstraint("external OR ends_at IS NULL", name="ends_at_external"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="care_group.id", index=True)
    email: str | None = Field(default=None, max_length=254)  # lower-cased
    rpps: str | None = Field(default=None, max_length=11)
    role: str = Field(max_length=16)
    external: bool = Field(default=False)
    ends_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    token_hash: str = Field(max_length=64, unique=True)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime)
    accepted_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    accepted_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
