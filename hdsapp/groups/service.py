"""Use cases of care groups, memberships and invitations.

Every use case runs inside ``accesslog.audited`` (one audit entry per call, denied attempts
included), asks ``hdsapp.policy.decide`` before touching anything (deny by default; out of the
caller's groups answers 404 exactly like a missing object), and never commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from sqlmodel import Session, col

from hdsapp.config import Settings
from hdsapp.core.accesslog import Access, AuditScope, audited
from hdsapp.core.actor import Actor, Role
from hdsapp.core.crypto.blind_index import normalize_family_name
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.db import Database, utcnow
from hdsapp.core.errors import (
    Conflict,
    Forbidden,
    HdsError,
    NotFound,
    Unauthenticated,
    Unprocessable,
)
from hdsapp.groups import pagination, repository
from hdsapp.groups.schemas import (
    GroupList,
    GroupPublic,
    InvitationCreate,
    InvitationCreated,
    InvitationList,
    InvitationPublic,
    InvitationStatus,
    MemberList,
    MemberPublic,
    MemberUpdate,
    RoleName,
)
from hdsapp.models.care_group import CareGroup
from hdsapp.models.invitation import Invitation
from hdsapp.models.membership import Membership
from hdsapp.models.user import User
from hdsapp.policy import Context, Decision, Resource, ResourceType, decide, row_plan

INVITATION_TTL = dt.timedelta(days=7)
INVITATION_TOKEN_PREFIX = "hds_inv_"  # noqa: S105 (a prefix, not a secret)
REAUTHENTICATE_PATH = "/api/v1/auth/reauthenticate"

_NOT_FOUND = {
    ResourceType.GROUP: "No such care group.",
    ResourceType.MEMBERSHIP: "No such member in this care group.",
    ResourceType.INVITATION: "No such invitation.",
    ResourceType.PATIENT: "No such patient.",
    ResourceType.OPPOSITION: "No such opposition.",
    ResourceType.AUDIT: "No such care group.",
}


class Gone(HdsError):
    status, code, title = 410, "gone", "Gone"


# -- the policy at work ------------------------------------------------------------------------


def policy_context(settings: Settings, *, now: dt.datetime | None = None) -> Context:
    return Context(now=now or utcnow(), step_up_seconds=float(settings.step_up_seconds))


def not_found(resource: ResourceType) -> NotFound:
    """The one 404 of a resource type: the same for "absent" and "not yours" (no leak)."""
    return NotFound(_NOT_FOUND[resource])


def authorize(
    actor: Actor, action: str, resource: Resource, context: Context, scope: AuditScope
) -> Decision:
    """``decide``, then either note the legal basis in the audit scope, or raise the refusal
    (its reason goes into the audit entry, not into the response)."""
    decision = decide(actor, action, resource, context)
    if decision.allowed:
        scope.legal_basis = decision.legal_basis
        return decision
    scope.outcome_desc = f"policy:{decision.reason}"
    raise refusal(decision, resource.type, context)


def refusal(decision: Decision, resource: ResourceType, context: Context) -> HdsError:
    if decision.reason == "unauthenticated":
        return Unauthenticated()
    if decision.status == 404:
        return not_found(resource)
    if decision.reason == "step-up-required":
        # The same answer as hdsapp.identity.service.require_recent_authentication.
        return Forbidden(
            "This action needs a recent authentication.",
            code="step-up-required",
            extra={
                "max_age_seconds": int(context.step_up_seconds),
                "reauthenticate": REAUTHENTICATE_PATH,
            },
        )
    return Forbidden("You are not allowed to do this.", code=f"forbidden-{decision.reason}")


def _limit(limit: int) -> int:
    return max(1, min(limit, pagination.MAX_LIMIT))


# -- memberships as the Actor sees them --------------------------------------------------------


def active_memberships(
    session: Session, user_id: uuid.UUID, *, now: dt.datetime | None = None
) -> Mapping[uuid.UUID, Role]:
    """The user's active memberships: group id -> role. Suspended and removed memberships, and
    external ones past their end date, are absent. Loaded for every request, so a change takes
    effect on the caller's next request."""
    rows = repository.active_membership_rows(session, user_id, now=now or utcnow())
    return MappingProxyType({group_id: Role(role) for group_id, role in rows})


# -- groups ------------------------------------------------------------------------------------


def _group_public(
    group: CareGroup, actor: Actor, member_count: int, now: dt.datetime
) -> GroupPublic:
    role = actor.role_in(group.id)
    return GroupPublic(
        id=group.id,
        name=group.name,
        description=group.description,
        created_at=group.created_at,
        role=role.value if role is not None else None,
        member_count=member_count,
        updated_at=group.updated_at,
    )


def _group_access(kind: str, action: str, group_id: uuid.UUID | None = None) -> Access:
    return Access(
        kind=kind,
        action=action,  # type: ignore[arg-type]
        group_id=group_id,
        resource_type="Organization",
        resource_id=str(group_id) if group_id else None,
    )


def create_group(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    name: str,
    description: str | None,
    coordinator_email: str,
) -> GroupPublic:
    with audited(session, database, actor, _group_access("create", "C")) as scope:
        context = policy_context(settings)
        authorize(actor, "group.create", Resource(type=ResourceType.GROUP), context, scope)
        coordinator = repository.user_by_email(session, coordinator_email.strip().lower())
        if coordinator is None:
            raise Unprocessable(
                "No user has this email: create the account first (hdsapp users add).",
                code="unknown-user",
                extra={"errors": [{"loc": ["body", "coordinator"], "msg": "unknown user"}]},
            )
        group = CareGroup(name=name, description=description, created_by=actor.user_id)
        repository.add(session, group)
        # The group's KEK, its own data key (patient identities) and its blind-index key.
        keyring.create_group_keys(session, group_id=group.id)
        repository.add(
            session,
            Membership(
                group_id=group.id,
                user_id=coordinator.id,
                role=Role.COORDINATOR.value,
                added_by=actor.user_id,
            ),
        )
        scope.group_id = group.id
        scope.resource_id = str(group.id)
        return _group_public(group, actor, 1, context.now)


def list_groups(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    cursor: str | None,
    limit: int,
) -> GroupList:
    access = dataclasses.replace(_group_access("search", "E"), query="groups")
    with audited(session, database, actor, access) as scope:
        context = policy_context(settings)
        authorize(actor, "group.list", Resource(type=ResourceType.GROUP), context, scope)
        after = pagination.decode_cursor(cursor, str, uuid.UUID) if cursor else None
        visible = repository.plan_predicate(
            row_plan(actor, "group.read", context),
            actor,
            col(CareGroup.id),
            repository.GROUP_PREDICATES,
        )
        limit = _limit(limit)
        rows = repository.list_groups(
            session, visible=visible, after=after, limit=limit + 1, now=context.now
        )
        page = rows[:limit]
        items = [_group_public(group, actor, count, context.now) for group, count in page]
        scope.result_refs = [f"Organization/{item.id}" for item in items]
        last = page[-1][0] if len(rows) > limit else None
        next_cursor = pagination.encode_cursor(last.name, last.id) if last else None
        return GroupList(items=items, next_cursor=next_cursor)


def get_group(
    *, session: Session, database: Database, actor: Actor, settings: Settings, group_id: uuid.UUID
) -> GroupPublic:
    with audited(session, database, actor, _group_access("read", "R", group_id)) as scope:
        context = policy_context(settings)
        resource = Resource(type=ResourceType.GROUP, group_id=group_id, id=group_id)
        authorize(actor, "group.read", resource, context, scope)
        group = repository.group_by_id(session, group_id)
        if group is None:
            raise not_found(ResourceType.GROUP)
        count = repository.active_member_count(session, group_id, now=context.now)
        return _group_public(group, actor, count, context.now)


def update_group(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    changes: Mapping[str, object],
) -> GroupPublic:
    with audited(session, database, actor, _group_access("update", "U", group_id)) as scope:
        context = policy_context(settings)
        resource = Resource(type=ResourceType.GROUP, group_id=group_id, id=group_id)
        authorize(actor, "group.update", resource, context, scope)
        group = repository.group_by_id(session, group_id, for_update=True)
        if group is None:
            raise not_found(ResourceType.GROUP)
        if "name" in changes:
            if changes["name"] is None:
                raise Unprocessable(
                    "A care group needs a name.",
                    extra={"errors": [{"loc": ["body", "name"], "msg": "may not be null"}]},
                )
            group.name = str(changes["name"])
        if "description" in changes:
            description = changes["description"]
            group.description = None if description is None else str(description)
        group.updated_at = context.now
        repository.add(session, group)
        count = repository.active_member_count(session, group_id, now=context.now)
        return _group_public(group, actor, count, context.now)


# -- members -----------------------------------------------------------------------------------


def _member_public(membership: Membership, user: User, now: dt.datetime) -> MemberPublic:
    ends_at = membership.ends_at
    return MemberPublic(
        group_id=membership.group_id,
        user_id=membership.user_id,
        display_name=user.display_name,
        email=user.email,
        rpps=user.rpps,
        idnps=user.idnps,
        profession=user.profession,
        role=_role_name(membership.role),
        status=membership.status,
        external=membership.external,
        ends_at=ends_at,
        expired=ends_at is not None and ends_at <= now,
        since=membership.created_at,
    )


def _role_name(role: str) -> RoleName:
    return Role(role).value


def _member_access(kind: str, action: str, group_id: uuid.UUID) -> Access:
    return Access(
        kind=kind,
        action=action,  # type: ignore[arg-type]
        group_id=group_id,
        resource_type="PractitionerRole",
    )


def list_members(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    include_removed: bool,
    cursor: str | None,
    limit: int,
) -> MemberList:
    access = dataclasses.replace(_member_access("search", "E", group_id), query="members")
    with audited(session, database, actor, access) as scope:
        context = policy_context(settings)
        resource = Resource(type=ResourceType.MEMBERSHIP, group_id=group_id)
        authorize(actor, "member.list", resource, context, scope)
        if repository.group_by_id(session, group_id) is None:
            raise not_found(ResourceType.GROUP)
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        limit = _limit(limit)
        rows = repository.list_members(
            session,
            group_id=group_id,
            include_removed=include_removed,
            after=after,
            limit=limit + 1,
        )
        page = rows[:limit]
        scope.result_refs = [f"PractitionerRole/{m.id}" for m, _ in page]
        last = page[-1][0] if len(rows) > limit else None
        return MemberList(
            items=[_member_public(m, u, context.now) for m, u in page],
            next_cursor=pagination.encode_cursor(last.created_at, last.id) if last else None,
        )


# A member search reads the whole (not removed) membership of the group, which every caller
# allowed to list members may see, then filters names here: at most this many rows.
MAX_MEMBER_SCAN = 5000


def _name_parts(name: str) -> list[str]:
    """``"Jean-Pierre D'Arc"`` -> the normalised name from each word on: jeanpierredarc,
    pierredarc, darc, arc (a name "starts with" a value when one of them does)."""
    words = [w for w in re.split(r"[\s\-'\u2019]+", name) if w]
    parts = []
    for start in range(len(words)):
        try:
            parts.append(normalize_family_name(" ".join(words[start:])))
        except ValueError:
            continue
    return parts


def search_members(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    user_ids: Sequence[uuid.UUID] | None = None,
    rpps: str | None = None,
    idnps: str | None = None,
    practitioner_id: str | None = None,
    name: str | None = None,
    cursor: str | None = None,
    limit: int = pagination.DEFAULT_LIMIT,
) -> MemberList:
    """The group's practitioners (members not removed) by id, RPPS, IDNPS and name (a word of
    the display name starts with ``name``; case, accents, spaces, hyphens and apostrophes
    ignored), with ``total``. The audit entry lists the results as ``Practitioner/{user id}``.
    Policy: ``member.list``."""
    access = dataclasses.replace(
        _member_access("search", "E", group_id),
        resource_type="Practitioner",
        query="Practitioner?"
        + "&".join(
            f"{key}=*"
            for key, value in (
                ("_id", user_ids),
                ("rpps", rpps),
                ("idnps", idnps),
                ("identifier", practitioner_id),
                ("name", name),
            )
            if value is not None
        ),
    )
    with audited(session, database, actor, access) as scope:
        context = policy_context(settings)
        resource = Resource(type=ResourceType.MEMBERSHIP, group_id=group_id)
        authorize(actor, "member.list", resource, context, scope)
        if repository.group_by_id(session, group_id) is None:
            raise not_found(ResourceType.GROUP)
        wanted = None
        if name is not None:
            try:
                wanted = normalize_family_name(name)
            except ValueError:
                raise Unprocessable(
                    "The name has no letter.",
                    code="invalid-search",
                    extra={"errors": [{"path": "name", "msg": "the name has no letter"}]},
                ) from None
        rows = repository.members_matching(
            session,
            group_id=group_id,
            user_ids=user_ids,
            rpps=rpps,
            idnps=idnps,
            practitioner_id=practitioner_id,
            limit=MAX_MEMBER_SCAN + 1,
        )
        if len(rows) > MAX_MEMBER_SCAN:
            raise Unprocessable(
                "Too many members to search by name: narrow the search down.",
                code="invalid-search",
            )
        if wanted is not None:
            rows = [
                (m, u)
                for m, u in rows
                if any(part.startswith(wanted) for part in _name_parts(u.display_name))
            ]
        total = len(rows)
        if cursor:
            after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID)
            rows = [(m, u) for m, u in rows if (m.created_at, m.id) > after]
        limit = _limit(limit)
        page = rows[:limit]
        scope.result_refs = [f"Practitioner/{u.id}" for _, u in page]
        last = page[-1][0] if len(rows) > limit else None
        return MemberList(
            items=[_member_public(m, u, context.now) for m, u in page],
            next_cursor=pagination.encode_cursor(last.created_at, last.id) if last else None,
            total=total,
        )


def get_member(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    user_id: uuid.UUID,
) -> MemberPublic:
    """One practitioner of the group (a member not removed). Policy: ``member.list``."""
    access = dataclasses.replace(
        _member_access("read", "R", group_id),
        resource_type="Practitioner",
        resource_id=str(user_id),
    )
    with audited(session, database, actor, access) as scope:
        context = policy_context(settings)
        resource = Resource(type=ResourceType.MEMBERSHIP, group_id=group_id)
        authorize(actor, "member.list", resource, context, scope)
        rows = repository.members_matching(session, group_id=group_id, user_ids=[user_id], limit=1)
        if not rows:
            raise not_found(ResourceType.MEMBERSHIP)
        membership, user = rows[0]
        return _member_public(membership, user, context.now)


def _the_group(session: Session, group_id: uuid.UUID) -> CareGroup:
    group = repository.group_by_id(session, group_id)
    if group is None:
        raise not_found(ResourceType.GROUP)
    return group


def add_member(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    email: str,
    role: Role,
) -> MemberPublic:
    """Operator command: make an existing user a member (or reactivate them) with ``role``."""
    with audited(session, database, actor, _member_access("create", "C", group_id)) as scope:
        context = policy_context(settings)
        resource = Resource(type=ResourceType.MEMBERSHIP, group_id=group_id)
        authorize(actor, "member.add", resource, context, scope)
        _the_group(session, group_id)
        user = repository.user_by_email(session, email.strip().lower())
        if user is None:
            raise Unprocessable("No user has this email.", code="unknown-user")
        membership = repository.membership(session, group_id, user.id, for_update=True)
        if holds_membership(membership, context.now):
            raise Conflict(
                "This user is already a member of the group (change the role with PATCH).",
                code="already-a-member",
            )
        membership = _join(
            session,
            membership,
            group_id=group_id,
            user_id=user.id,
            role=role.value,
            ends_at=None,
            added_by=actor.user_id,
            now=context.now,
        )
        scope.resource_id = str(membership.id)
        return _member_public(membership, user, context.now)


def holds_membership(membership: Membership | None, now: dt.datetime) -> bool:
    """A membership that still holds: active and not past its end date, or suspended (the
    coordinator reactivates it). Removed and expired ones can be joined again."""
    if membership is None:
        return False
    if membership.status == "suspended":
        return True
    return membership.status == "active" and (
        membership.ends_at is None or membership.ends_at > now
    )


def _join(
    session: Session,
    membership: Membership | None,
    *,
    group_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    ends_at: dt.datetime | None,
    added_by: uuid.UUID | None,
    now: dt.datetime,
) -> Membership:
    if membership is None:
        membership = Membership(group_id=group_id, user_id=user_id, role=role)
        membership.created_at = now
    membership.role = role
    membership.status = "active"
    membership.external = ends_at is not None
    membership.ends_at = ends_at
    membership.added_by = added_by
    membership.updated_at = now
    repository.add(session, membership)
    return membership


def _check_end_date(
    external: bool, ends_at: dt.datetime | None, now: dt.datetime, loc: str = "ends_at"
) -> None:
    if external and ends_at is None:
        raise Unprocessable(
            "An external member needs an end date.",
            code="end-date-required",
            extra={"errors": [{"loc": ["body", loc], "msg": "required for external members"}]},
        )
    if not external and ends_at is not None:
        raise Unprocessable(
            "Only external members have an end date.",
            code="end-date-for-external-only",
            extra={"errors": [{"loc": ["body", loc], "msg": "only for external members"}]},
        )
    if ends_at is not None and ends_at <= now:
        raise Unprocessable(
            "The end date must be in the future.",
            code="end-date-in-the-past",
            extra={"errors": [{"loc": ["body", loc], "msg": "must be in the future"}]},
        )


def _keep_a_coordinator(
    session: Session, group_id: uuid.UUID, membership: Membership, now: dt.datetime
) -> None:
    """Refuse a change that would leave the group without an active coordinator."""
    coordinators = repository.active_coordinator_ids(session, group_id, now=now)
    if coordinators == {membership.user_id}:
        raise Conflict(
            "The group would have no active coordinator left: appoint another one first.",
            code="last-coordinator",
        )


def update_member(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    user_id: uuid.UUID,
    update: MemberUpdate,
) -> MemberPublic:
    with audited(session, database, actor, _member_access("update", "U", group_id)) as scope:
        context = policy_context(settings)
        resource = Resource(type=ResourceType.MEMBERSHIP, group_id=group_id)
        fields = update.model_fields_set
        # Suspension, reactivation and end dates are member.update; a role is
        # member.change_role (step-up). A request with both needs both.
        if fields - {"role"} or not fields:
            authorize(actor, "member.update", resource, context, scope)
        if "role" in fields:
            authorize(actor, "member.change_role", resource, context, scope)
        membership = repository.membership(session, group_id, user_id, for_update=True)
        if membership is None or membership.status == "removed":
            raise not_found(ResourceType.MEMBERSHIP)
        scope.resource_id = str(membership.id)
        user = repository.user_by_id(session, user_id)
        assert user is not None
        losing_coordinator = membership.role == Role.COORDINATOR.value and (
            (update.role is not None and update.role != Role.COORDINATOR.value)
            or update.status == "suspended"
        )
        if losing_coordinator and membership.status == "active":
            _keep_a_coordinator(session, group_id, membership, context.now)
        external = update.external if update.external is not None else membership.external
        ends_at = update.ends_at if "ends_at" in fields else membership.ends_at
        if "external" in fields and not external and "ends_at" not in fields:
            ends_at = None
        if {"external", "ends_at"} & fields:
            _check_end_date(external, ends_at, context.now)
        if update.role is not None:
            membership.role = update.role
        if update.status is not None:
            membership.status = update.status
        membership.external = external
        membership.ends_at = ends_at
        membership.updated_at = context.now
        repository.add(session, membership)
        return _member_public(membership, user, context.now)


def remove_member(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    user_id: uuid.UUID,
) -> None:
    with audited(session, database, actor, _member_access("delete", "D", group_id)) as scope:
        context = policy_context(settings)
        resource = Resource(type=ResourceType.MEMBERSHIP, group_id=group_id)
        authorize(actor, "member.remove", resource, context, scope)
        membership = repository.membership(session, group_id, user_id, for_update=True)
        if membership is None or membership.status == "removed":
            raise not_found(ResourceType.MEMBERSHIP)
        scope.resource_id = str(membership.id)
        if membership.role == Role.COORDINATOR.value and membership.status == "active":
            _keep_a_coordinator(session, group_id, membership, context.now)
        membership.status = "removed"
        membership.updated_at = context.now
        repository.add(session, membership)


# -- invitations -------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_status(invitation: Invitation, now: dt.datetime) -> InvitationStatus:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= now:
        return "expired"
    return "pending"


def _invitation_public(invitation: Invitation, now: dt.datetime) -> InvitationPublic:
    return InvitationPublic(
        id=invitation.id,
        group_id=invitation.group_id,
        email=invitation.email,
        rpps=invitation.rpps,
        role=_role_name(invitation.role),
        external=invitation.external,
        ends_at=invitation.ends_at,
        status=invitation_status(invitation, now),
        created_at=invitation.created_at,
        expires_at=invitation.expires_at,
    )


def _invitation_access(kind: str, action: str, group_id: uuid.UUID | None) -> Access:
    return Access(
        kind=kind,
        action=action,  # type: ignore[arg-type]
        group_id=group_id,
        resource_type="Invitation",
    )


def invite(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    request: InvitationCreate,
) -> InvitationCreated:
    with audited(session, database, actor, _invitation_access("create", "C", group_id)) as scope:
        context = policy_context(settings)
        resource = Resource(type=ResourceType.INVITATION, group_id=group_id)
        authorize(actor, "invitation.create", resource, context, scope)
        _the_group(session, group_id)
        if request.email is None and request.rpps is None:
            raise Unprocessable(
                "Invite by email or by RPPS number.",
                code="addressee-required",
                extra={"errors": [{"loc": ["body"], "msg": "email or rpps is required"}]},
            )
        _check_end_date(request.external, request.ends_at, context.now)
        for user in _users_matching(session, request.email, request.rpps):
            membership = repository.membership(session, group_id, user.id)
            if holds_membership(membership, context.now):
                raise Conflict(
                    "This person is already a member of the group.",
                    code="already-a-member",
                    extra={"user_id": str(user.id)},
                )
        pending = repository.pending_invitation_for(
            session, group_id=group_id, email=request.email, rpps=request.rpps, now=context.now
        )
        if pending is not None:
            raise Conflict(
                "An invitation is already pending for this person (revoke it to send another).",
                code="invitation-pending",
                extra={"invitation_id": str(pending.id)},
            )
        token = INVITATION_TOKEN_PREFIX + secrets.token_urlsafe(32)
        invitation = Invitation(
            group_id=group_id,
            email=request.email,
            rpps=request.rpps,
            role=request.role,
            external=request.external,
            ends_at=request.ends_at,
            token_hash=token_hash(token),
            created_by=actor.user_id,
            created_at=context.now,
            expires_at=context.now + INVITATION_TTL,
        )
        repository.add(session, invitation)
        scope.resource_id = str(invitation.id)
        public = _invitation_public(invitation, context.now)
        return InvitationCreated(
            **public.model_dump(),
            token=token,
            accept_path=f"/api/v1/invitations/{token}/accept",
        )


def _users_matching(session: Session, email: str | None, rpps: str | None) -> list[User]:
    users: dict[uuid.UUID, User] = {}
    if email is not None and (user := repository.user_by_email(session, email)) is not None:
        users[user.id] = user
    if rpps is not None and (user := repository.user_by_rpps(session, rpps)) is not None:
        users[user.id] = user
    return list(users.values())


def list_invitations(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    pending_only: bool,
    cursor: str | None,
    limit: int,
) -> InvitationList:
    access = dataclasses.replace(_invitation_access("search", "E", group_id), query="invitations")
    with audited(session, database, actor, access) as scope:
        context = policy_context(settings)
        resource = Resource(type=ResourceType.INVITATION, group_id=group_id)
        authorize(actor, "invitation.list", resource, context, scope)
        _the_group(session, group_id)
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        limit = _limit(limit)
        rows = repository.list_invitations(
            session,
            group_id=group_id,
            pending_only=pending_only,
            after=after,
            limit=limit + 1,
            now=context.now,
        )
        page = rows[:limit]
        scope.result_refs = [f"Invitation/{i.id}" for i in page]
        last = page[-1] if len(rows) > limit else None
        return InvitationList(
            items=[_invitation_public(i, context.now) for i in page],
            next_cursor=pagination.encode_cursor(last.created_at, last.id) if last else None,
        )


def revoke_invitation(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    invitation_id: uuid.UUID,
) -> None:
    with audited(session, database, actor, _invitation_access("delete", "D", group_id)) as scope:
        context = policy_context(settings)
        resource = Resource(type=ResourceType.INVITATION, group_id=group_id, id=invitation_id)
        authorize(actor, "invitation.revoke", resource, context, scope)
        invitation = repository.invitation_by_id(session, group_id, invitation_id, for_update=True)
        if invitation is None:
            raise not_found(ResourceType.INVITATION)
        scope.resource_id = str(invitation.id)
        if invitation.accepted_at is not None:
            raise Conflict("The invitation was already accepted.", code="invitation-used")
        if invitation.revoked_at is None:
            invitation.revoked_at = context.now
            repository.add(session, invitation)


def accept_invitation(
    *, session: Session, database: Database, actor: Actor, settings: Settings, token: str
) -> MemberPublic:
    with audited(session, database, actor, _invitation_access("create", "C", None)) as scope:
        context = policy_context(settings)
        invitation = None
        if token.startswith(INVITATION_TOKEN_PREFIX) and len(token) <= 128:
            invitation = repository.invitation_by_token_hash(
                session, token_hash(token), for_update=True
            )
        if invitation is None:
            scope.outcome_desc = "unknown-invitation"
            raise not_found(ResourceType.INVITATION)
        scope.group_id = invitation.group_id
        scope.resource_id = str(invitation.id)
        user = repository.user_by_id(session, actor.user_id) if actor.user_id else None
        addressed = user is not None and (
            (invitation.email is not None and (user.email or "").lower() == invitation.email)
            or (invitation.rpps is not None and user.rpps == invitation.rpps)
        )
        resource = Resource(
            type=ResourceType.INVITATION,
            group_id=invitation.group_id,
            id=invitation.id,
            addressed_to_actor=addressed,
        )
        authorize(actor, "invitation.accept", resource, context, scope)
        assert user is not None
        status = invitation_status(invitation, context.now)
        if status != "pending":
            raise Gone(
                f"This invitation can no longer be used ({status}).",
                code={"accepted": "invitation-used"}.get(status, f"invitation-{status}"),
            )
        if invitation.ends_at is not None and invitation.ends_at <= context.now:
            raise Gone("The membership period of this invitation is over.", code="period-over")
        membership = repository.membership(session, invitation.group_id, user.id, for_update=True)
        if holds_membership(membership, context.now):
            raise Conflict("You are already a member of this group.", code="already-a-member")
        membership = _join(
            session,
            membership,
            group_id=invitation.group_id,
            user_id=user.id,
            role=invitation.role,
            ends_at=invitation.ends_at,
            added_by=invitation.created_by,
            now=context.now,
        )
        invitation.accepted_at = context.now
        invitation.accepted_by = user.id
        repository.add(session, invitation)
        return _member_public(membership, user, context.now)


# -- demo --------------------------------------------------------------------------------------

DEMO_GROUP_NAME = "CPTS de démonstration"
DEMO_GROUP_DESCRIPTION = "Demo care group: published credentials, fictitious patients."


def seed_demo_group(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    members: Mapping[str, Role],
) -> uuid.UUID:
    """The demo care group with ``members`` (email -> role), the first coordinator founding it.
    Idempotent: a second run finds the group and resets the memberships."""
    with audited(session, database, actor, _group_access("create", "C")) as scope:
        context = policy_context(settings)
        authorize(actor, "group.create", Resource(type=ResourceType.GROUP), context, scope)
        group = repository.group_by_name(session, DEMO_GROUP_NAME)
        if group is None:
            group = CareGroup(
                name=DEMO_GROUP_NAME, description=DEMO_GROUP_DESCRIPTION, created_by=actor.user_id
            )
            repository.add(session, group)
            keyring.create_group_keys(session, group_id=group.id)
        scope.group_id = group.id
        scope.resource_id = str(group.id)
        for email, role in members.items():
            user = repository.user_by_email(session, email)
            if user is None:
                raise Unprocessable("No user has this email.", code="unknown-user")
            membership = repository.membership(session, group.id, user.id, for_update=True)
            _join(
                session,
                membership,
                group_id=group.id,
                user_id=user.id,
                role=role.value,
                ends_at=None,
                added_by=actor.user_id,
                now=context.now,
            )
        return group.id
