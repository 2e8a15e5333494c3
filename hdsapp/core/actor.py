"""Who is calling, as every use case, the policy and the audit log see it.

The edge (an endpoint's authentication dependency, a task, a command) builds the Actor; services
receive it instead of a Request, so they know who acts, with which roles and scopes, and from
where — without seeing the web framework.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal


class Role(StrEnum):
    CLINICIAN = "clinician"
    COORDINATOR = "coordinator"
    AUDITOR = "auditor"


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    AUDIT = "audit"


ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True, kw_only=True)
class RequestInfo:
    """Where a call comes from; recorded in every audit entry."""

    request_id: str
    client_ip: str | None = None
    user_agent: str | None = None


SYSTEM_REQUEST = RequestInfo(request_id="system")


@dataclass(frozen=True, kw_only=True)
class Actor:
    kind: Literal["user", "token", "anonymous", "system"]
    request: RequestInfo
    user_id: uuid.UUID | None = None
    rpps: str | None = None
    idnps: str | None = None
    profession: str | None = None
    # Active memberships only: group id -> role. Suspended, removed or expired ones are absent.
    memberships: Mapping[uuid.UUID, Role] = field(default_factory=lambda: MappingProxyType({}))
    scopes: frozenset[Scope] = frozenset()
    session_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
    authenticated_at: dt.datetime | None = None
    second_factor: bool = False
    is_operator: bool = False

    @property
    def is_authenticated(self) -> bool:
        return self.kind in {"user", "token", "system"} and (
            self.user_id is not None or self.kind == "system"
        )

    def role_in(self, group_id: uuid.UUID) -> Role | None:
        return self.memberships.get(group_id)

    def has_scope(self, scope: Scope) -> bool:
        return scope in self.scopes

    def authenticated_within(self, seconds: float, *, now: dt.datetime) -> bool:
        """Step-up: was the last authentication recent enough for a sensitive action?"""
        if self.authenticated_at is None:
            return False
        return (now - self.authenticated_at).total_seconds() <= seconds


def anonymous(request: RequestInfo) -> Actor:
    return Actor(kind="anonymous", request=request)


def system_actor(request: RequestInfo = SYSTEM_REQUEST) -> Actor:
    """The platform itself (jobs, commands): never a path to clinical content by policy."""
    return Actor(kind="system", request=request, scopes=ALL_SCOPES, is_operator=True)
