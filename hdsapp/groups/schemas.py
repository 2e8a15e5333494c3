"""Request and response models of care groups, memberships and invitations.

Requests are strict: unknown fields are refused and JSON types are not coerced (``"true"`` is
not a boolean, ``1`` is not a string); datetimes are RFC 3339 strings with an offset.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

RoleName = Literal["clinician", "coordinator", "auditor"]
MemberStatus = Literal["active", "suspended", "removed"]
InvitationStatus = Literal["pending", "accepted", "expired", "revoked"]


def _json_string(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be a JSON string")
    return value


def _lower(value: str) -> str:
    return value.lower()


# An RFC 3339 date-time with an offset, given as a JSON string (not a number of seconds).
JsonDatetime = Annotated[AwareDatetime, BeforeValidator(_json_string)]
Name = Annotated[
    str, BeforeValidator(_json_string), StringConstraints(strip_whitespace=True, min_length=1)
]
Email = Annotated[
    str,
    BeforeValidator(_json_string),
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    AfterValidator(_lower),
]
Rpps = Annotated[str, BeforeValidator(_json_string), StringConstraints(pattern=r"^[0-9]{11}$")]
Role = Annotated[RoleName, BeforeValidator(_json_string)]


class StrictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- groups ------------------------------------------------------------------------------------


class GroupCreate(StrictRequest):
    name: Annotated[Name, Field(max_length=200)]
    description: Annotated[Name, Field(max_length=1000)] | None = None
    coordinator: Email = Field(description="email of an existing user, made coordinator")


class GroupUpdate(StrictRequest):
    name: Annotated[Name, Field(max_length=200)] | None = None
    description: Annotated[Name, Field(max_length=1000)] | None = None


class GroupPublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    created_at: dt.datetime
    role: RoleName | None = Field(description="the caller's role in the group, if a member")
    member_count: int = Field(description="active members")
    updated_at: dt.datetime | None = None


class GroupList(BaseModel):
    items: list[GroupPublic]
    next_cursor: str | None


# -- members -----------------------------------------------------------------------------------


class MemberPublic(BaseModel):
    group_id: uuid.UUID
    user_id: uuid.UUID
    display_name: str
    email: str | None
    rpps: str | None
    idnps: str | None = None
    profession: str | None
    role: RoleName
    status: MemberStatus
    external: bool
    ends_at: dt.datetime | None
    expired: bool = Field(description="an external member whose end date has passed")
    since: dt.datetime


class MemberList(BaseModel):
    items: list[MemberPublic]
    next_cursor: str | None
    total: int | None = Field(default=None, description="matching members (member searches)")


class MemberUpdate(StrictRequest):
    """Change a member: ``role`` (step-up required), ``status`` (suspend or reactivate),
    ``external`` and ``ends_at`` (external members only)."""

    role: Role | None = None
    status: Annotated[Literal["active", "suspended"], BeforeValidator(_json_string)] | None = None
    external: StrictBool | None = None
    ends_at: JsonDatetime | None = None


# -- invitations -------------------------------------------------------------------------------


class InvitationCreate(StrictRequest):
    """Invite someone by email or RPPS (at least one) with a role; external members need an
    end date."""

    email: Email | None = None
    rpps: Rpps | None = None
    role: Role
    external: StrictBool = False
    ends_at: JsonDatetime | None = None


class InvitationPublic(BaseModel):
    id: uuid.UUID
    group_id: uuid.UUID
    email: str | None
    rpps: str | None
    role: RoleName
    external: bool
    ends_at: dt.datetime | None
    status: InvitationStatus
    created_at: dt.datetime
    expires_at: dt.datetime


class InvitationCreated(InvitationPublic):
    token: str = Field(description="shown once: the invitee accepts with it")
    accept_path: str


class InvitationList(BaseModel):
    items: list[InvitationPublic]
    next_cursor: str | None


class CommandGroup(BaseModel):
    group_id: uuid.UUID


class CommandMember(BaseModel):
    group_id: uuid.UUID
    user_id: uuid.UUID
    role: RoleName
