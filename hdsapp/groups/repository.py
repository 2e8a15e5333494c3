"""Every query of care groups, memberships and invitations.

Lists go through ``plan_predicate``: the access-aware statement builder that turns the policy's
``RowPlan`` (from the same table rules as ``decide``) into a SQL predicate, so a list never
returns, and a count never counts, a row the caller may not see.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true
from sqlalchemy.sql.selectable import ScalarSelect
from sqlmodel import Session, col

from hdsapp.core.actor import Actor
from hdsapp.models.care_group import CareGroup
from hdsapp.models.invitation import Invitation
from hdsapp.models.membership import Membership
from hdsapp.models.user import User
from hdsapp.policy import ALL_GROUPS, RowPlan

RowPredicate = Callable[[Actor], ColumnElement[bool]]


def plan_predicate(
    plan: RowPlan,
    actor: Actor,
    group_column: Any,
    predicates: Mapping[str, RowPredicate],
) -> ColumnElement[bool]:
    """The SQL form of ``plan``: a row is visible when its group has an entry whose condition
    sets are all true for at least one set. Unknown conditions raise (a table rule without its
    SQL twin must never silently widen or narrow a list)."""
    clauses: list[ColumnElement[bool]] = []
    for group, alternatives in plan.groups.items():
        options = []
        for conditions in alternatives:
            missing = [c for c in conditions if c not in predicates]
            if missing:
                raise LookupError(f"no SQL predicate for row conditions {missing}")
            options.append(and_(true(), *(predicates[c](actor) for c in sorted(conditions))))
        condition = or_(*options) if options else false()
        clauses.append(condition if group == ALL_GROUPS else and_(group_column == group, condition))
    return or_(*clauses) if clauses else false()


# Row conditions of group, membership and invitation rules: none today (they are per group).
GROUP_PREDICATES: Mapping[str, RowPredicate] = MappingProxyType({})


def add(session: Session, row: object) -> None:
    session.add(row)
    session.flush()


# -- memberships seen by the authentication of each request ------------------------------------


def active_membership_rows(
    session: Session, user_id: uuid.UUID, *, now: dt.datetime
) -> Sequence[tuple[uuid.UUID, str]]:
    statement = select(col(Membership.group_id), col(Membership.role)).where(
        col(Membership.user_id) == user_id,
        col(Membership.status) == "active",
        or_(col(Membership.ends_at).is_(None), col(Membership.ends_at) > now),
    )
    return [(row[0], row[1]) for row in session.execute(statement).all()]


# -- groups ------------------------------------------------------------------------------------


def group_by_id(
    session: Session, group_id: uuid.UUID, *, for_update: bool = False
) -> CareGroup | None:
    statement = select(CareGroup).where(col(CareGroup.id) == group_id)
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def group_by_name(session: Session, name: str) -> CareGroup | None:
    statement = select(CareGroup).where(col(CareGroup.name) == name).order_by(col(CareGroup.id))
    return session.scalars(statement).first()


def _active_member_count(group_key: Any, now: dt.datetime) -> ScalarSelect[int]:
    """Active members of the group ``group_key`` (a group id, or a correlated group column)."""
    return (
        select(func.count())
        .select_from(Membership)
        .where(
            col(Membership.group_id) == group_key,
            col(Membership.status) == "active",
            or_(col(Membership.ends_at).is_(None), col(Membership.ends_at) > now),
        )
        .scalar_subquery()
    )


def active_member_count(session: Session, group_id: uuid.UUID, *, now: dt.datetime) -> int:
    return int(session.execute(select(_active_member_count(group_id, now))).scalar_one())


def list_groups(
    session: Session,
    *,
    visible: ColumnElement[bool],
    after: tuple[str, uuid.UUID] | None,
    limit: int,
    now: dt.datetime,
) -> Sequence[tuple[CareGroup, int]]:
    statement = select(CareGroup, _active_member_count(col(CareGroup.id), now)).where(visible)
    if after is not None:
        name, last_id = after
        statement = statement.where(
            or_(
                col(CareGroup.name) > name,
                and_(col(CareGroup.name) == name, col(CareGroup.id) > last_id),
            )
        )
    statement = statement.order_by(col(CareGroup.name), col(CareGroup.id)).limit(limit)
    return [(row[0], int(row[1])) for row in session.execute(statement).all()]


# -- users -------------------------------------------------------------------------------------


def user_by_id(session: Session, user_id: uuid.UUID) -> User | None:
    return session.scalars(select(User).where(col(User.id) == user_id)).first()


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(func.lower(col(User.email)) == email)).first()


def user_by_rpps(session: Session, rpps: str) -> User | None:
    return session.scalars(select(User).where(col(User.rpps) == rpps)).first()


# -- memberships -------------------------------------------------------------------------------


def membership(
    session: Session, group_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
) -> Membership | None:
    statement = select(Membership).where(
        col(Membership.group_id) == group_id, col(Membership.user_id) == user_id
    )
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def active_coordinator_ids(
    session: Session, group_id: uuid.UUID, *, now: dt.datetime
) -> set[uuid.UUID]:
    """The group's active coordinators, locked until the transaction ends (so two concurrent
    changes cannot both leave the group without one)."""
    statement = (
        select(Membership)
        .where(
            col(Membership.group_id) == group_id,
            col(Membership.role) == "coordinator",
            col(Membership.status) == "active",
            or_(col(Membership.ends_at).is_(None), col(Membership.ends_at) > now),
        )
        .with_for_update()
    )
    return {m.user_id for m in session.scalars(statement).all()}


def list_members(
    session: Session,
    *,
    group_id: uuid.UUID,
    include_removed: bool,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[tuple[Membership, User]]:
    statement = (
        select(Membership, User)
        .join(User, col(User.id) == col(Membership.user_id))
        .where(col(Membership.group_id) == group_id)
    )
    if not include_removed:
        statement = statement.where(col(Membership.status) != "removed")
    if after is not None:
        created, last_id = after
        statement = statement.where(
            or_(
                col(Membership.created_at) > created,
                and_(col(Membership.created_at) == created, col(Membership.id) > last_id),
            )
        )
    statement = statement.order_by(col(Membership.created_at), col(Membership.id)).limit(limit)
    return [(row[0], row[1]) for row in session.execute(statement).all()]


def members_matching(
    session: Session,
    *,
    group_id: uuid.UUID,
    user_ids: Sequence[uuid.UUID] | None = None,
    rpps: str | None = None,
    idnps: str | None = None,
    practitioner_id: str | None = None,
    limit: int,
) -> Sequence[tuple[Membership, User]]:
    """The group's members (not removed) with these ids and identifiers, oldest first;
    ``practitioner_id`` matches an RPPS or an IDNPS."""
    statement = (
        select(Membership, User)
        .join(User, col(User.id) == col(Membership.user_id))
        .where(col(Membership.group_id) == group_id, col(Membership.status) != "removed")
    )
    if user_ids is not None:
        statement = statement.where(col(Membership.user_id).in_(user_ids))
    if rpps is not None:
        statement = statement.where(col(User.rpps) == rpps)
    if idnps is not None:
        statement = statement.where(col(User.idnps) == idnps)
    if practitioner_id is not None:
        statement = statement.where(
            or_(col(User.rpps) == practitioner_id, col(User.idnps) == practitioner_id)
        )
    statement = statement.order_by(col(Membership.created_at), col(Membership.id)).limit(limit)
    return [(row[0], row[1]) for row in session.execute(statement).all()]


# -- invitations -------------------------------------------------------------------------------


def invitation_by_token_hash(
    session: Session, token_hash: str, *, for_update: bool = False
) -> Invitation | None:
    statement = select(Invitation).where(col(Invitation.token_hash) == token_hash)
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def invitation_by_id(
    session: Session, group_id: uuid.UUID, invitation_id: uuid.UUID, *, for_update: bool = False
) -> Invitation | None:
    statement = select(Invitation).where(
        col(Invitation.group_id) == group_id, col(Invitation.id) == invitation_id
    )
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def _pending(now: dt.datetime) -> ColumnElement[bool]:
    return and_(
        col(Invitation.accepted_at).is_(None),
        col(Invitation.revoked_at).is_(None),
        col(Invitation.expires_at) > now,
    )


def pending_invitation_for(
    session: Session,
    *,
    group_id: uuid.UUID,
    email: str | None,
    rpps: str | None,
    now: dt.datetime,
) -> Invitation | None:
    addressees = []
    if email:
        addressees.append(col(Invitation.email) == email)
    if rpps:
        addressees.append(col(Invitation.rpps) == rpps)
    statement = select(Invitation).where(
        col(Invitation.group_id) == group_id, _pending(now), or_(*addressees)
    )
    return session.scalars(statement).first()


def list_invitations(
    session: Session,
    *,
    group_id: uuid.UUID,
    pending_only: bool,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    now: dt.datetime,
) -> Sequence[Invitation]:
    statement = select(Invitation).where(col(Invitation.group_id) == group_id)
    if pending_only:
        statement = statement.where(_pending(now))
    if after is not None:
        created, last_id = after
        statement = statement.where(
            or_(
                col(Invitation.created_at) > created,
                and_(col(Invitation.created_at) == created, col(Invitation.id) > last_id),
            )
        )
    statement = statement.order_by(col(Invitation.created_at), col(Invitation.id)).limit(limit)
    return session.scalars(statement).all()
