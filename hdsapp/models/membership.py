import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, UniqueConstraint
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow

MEMBERSHIP_ROLES = ("clinician", "coordinator", "auditor")
MEMBERSHIP_STATUSES = ("active", "suspended", "removed")


class Membership(SQLModel, table=True):
    """A user's role in one care group.

    Only ``active`` rows whose ``ends_at`` (external members) is in the future count: the Actor of
    each request is built from them (hdsapp.groups.service.active_memberships). A removed member
    keeps the row (history); inviting them again reactivates it.
    """

    __tablename__ = "membership"
    __table_args__ = (
        UniqueConstraint("group_id", "user_id"),
        CheckConstraint("role IN ('clinician', 'coordinator', 'auditor')", name="role"),
        CheckConstraint("status IN ('active', 'suspended', 'removed')", name="status"),
        CheckConstraint("external OR ends_at IS NULL", name="ends_at_external"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="care_group.id")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    role: str = Field(max_length=16)
    status: str = Field(default="active", max_length=16)
    # External members (a hospital specialist, a locum) have an end date, enforced per request.
    external: bool = Field(default=False)
    ends_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    added_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
