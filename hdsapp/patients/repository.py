"""Every query of patients and oppositions.

Lists go through the access-aware builder of the groups domain (``plan_predicate``) with the
row conditions of patient rules written here, next to the table's ``no_opposition``: the same
predicate the single-patient decision uses (``opposition_applies``), so a search never returns,
and never counts, a patient whose opposition covers the caller.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlmodel import Session, col

from hdsapp.groups.repository import RowPredicate
from hdsapp.models.membership import Membership
from hdsapp.models.opposition import Opposition
from hdsapp.models.opposition_professional import OppositionProfessional
from hdsapp.models.patient import Patient


def opposition_covers(patient_id: Any, user_id: uuid.UUID | None) -> ColumnElement[bool]:
    """An active opposition of the patient ``patient_id`` (an id or a correlated column)
    covers ``user_id``: scope "group", or "professionals" naming them."""
    named = exists().where(
        col(OppositionProfessional.opposition_id) == col(Opposition.id),
        col(OppositionProfessional.user_id) == user_id,
    )
    return exists().where(
        col(Opposition.patient_id) == patient_id,
        col(Opposition.status) == "active",
        or_(col(Opposition.scope) == "group", named),
    )


# The SQL twin of each row condition that patient rules use (hdsapp/policy/rules.toml).
PATIENT_PREDICATES: Mapping[str, RowPredicate] = MappingProxyType(
    {"no_opposition": lambda actor: ~opposition_covers(col(Patient.id), actor.user_id)}
)


def add(session: Session, row: object) -> None:
    session.add(row)
    session.flush()


def opposition_applies(session: Session, *, patient_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    return bool(session.execute(select(opposition_covers(patient_id, user_id))).scalar_one())


def patient_by_id(
    session: Session, group_id: uuid.UUID, patient_id: uuid.UUID, *, for_update: bool = False
) -> Patient | None:
    statement = select(Patient).where(
        col(Patient.group_id) == group_id, col(Patient.id) == patient_id
    )
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def patient_id_by_ins(session: Session, group_id: uuid.UUID, ins_index: bytes) -> uuid.UUID | None:
    """The patient holding this INS in the group, whoever may see it (duplicate check)."""
    statement = select(col(Patient.id)).where(
        col(Patient.group_id) == group_id, col(Patient.ins_index) == ins_index
    )
    found: uuid.UUID | None = session.execute(statement).scalar_one_or_none()
    return found


def _search_filter(
    *,
    visible: ColumnElement[bool],
    group_id: uuid.UUID,
    ins_index: bytes | None,
    name_index: bytes | None,
    ins_any: Sequence[bytes] | None = None,
    ids: Sequence[uuid.UUID] | None = None,
) -> list[ColumnElement[bool]]:
    conditions = [col(Patient.group_id) == group_id, visible]
    if ins_index is not None:
        conditions.append(col(Patient.ins_index) == ins_index)
    if ins_any is not None:
        # An INS value searched without its system: any of the INS systems' indexes.
        conditions.append(col(Patient.ins_index).in_(ins_any))
    if name_index is not None:
        conditions.append(col(Patient.name_birthdate_index) == name_index)
    if ids is not None:
        conditions.append(col(Patient.id).in_(ids))
    return conditions


def search(
    session: Session,
    *,
    visible: ColumnElement[bool],
    group_id: uuid.UUID,
    ins_index: bytes | None,
    name_index: bytes | None,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    ins_any: Sequence[bytes] | None = None,
    ids: Sequence[uuid.UUID] | None = None,
) -> Sequence[Patient]:
    conditions = _search_filter(
        visible=visible,
        group_id=group_id,
        ins_index=ins_index,
        name_index=name_index,
        ins_any=ins_any,
        ids=ids,
    )
    if after is not None:
        created, last_id = after
        conditions.append(
            or_(
                col(Patient.created_at) > created,
                and_(col(Patient.created_at) == created, col(Patient.id) > last_id),
            )
        )
    statement = (
        select(Patient)
        .where(*conditions)
        .order_by(col(Patient.created_at), col(Patient.id))
        .limit(limit)
    )
    return session.scalars(statement).all()


def count(
    session: Session,
    *,
    visible: ColumnElement[bool],
    group_id: uuid.UUID,
    ins_index: bytes | None,
    name_index: bytes | None,
    ins_any: Sequence[bytes] | None = None,
    ids: Sequence[uuid.UUID] | None = None,
) -> int:
    conditions = _search_filter(
        visible=visible,
        group_id=group_id,
        ins_index=ins_index,
        name_index=name_index,
        ins_any=ins_any,
        ids=ids,
    )
    statement = select(func.count()).select_from(Patient).where(*conditions)
    return int(session.execute(statement).scalar_one())


# -- oppositions -------------------------------------------------------------------------------


def oppositions_of(
    session: Session,
    *,
    patient_id: uuid.UUID,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Opposition]:
    conditions = [col(Opposition.patient_id) == patient_id]
    if after is not None:
        recorded, last_id = after
        conditions.append(
            or_(
                col(Opposition.recorded_at) > recorded,
                and_(col(Opposition.recorded_at) == recorded, col(Opposition.id) > last_id),
            )
        )
    statement = (
        select(Opposition)
        .where(*conditions)
        .order_by(col(Opposition.recorded_at), col(Opposition.id))
        .limit(limit)
    )
    return session.scalars(statement).all()


def opposition_by_id(
    session: Session,
    *,
    patient_id: uuid.UUID,
    opposition_id: uuid.UUID,
    for_update: bool = False,
) -> Opposition | None:
    statement = select(Opposition).where(
        col(Opposition.patient_id) == patient_id, col(Opposition.id) == opposition_id
    )
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def opposition_in_group(
    session: Session, *, group_id: uuid.UUID, opposition_id: uuid.UUID
) -> Opposition | None:
    statement = select(Opposition).where(
        col(Opposition.group_id) == group_id, col(Opposition.id) == opposition_id
    )
    return session.scalars(statement).first()


def count_oppositions_of(session: Session, *, patient_id: uuid.UUID) -> int:
    statement = (
        select(func.count()).select_from(Opposition).where(col(Opposition.patient_id) == patient_id)
    )
    return int(session.execute(statement).scalar_one())


def professionals_of(
    session: Session, opposition_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    found: dict[uuid.UUID, list[uuid.UUID]] = {oid: [] for oid in opposition_ids}
    if not opposition_ids:
        return found
    statement = (
        select(col(OppositionProfessional.opposition_id), col(OppositionProfessional.user_id))
        .where(col(OppositionProfessional.opposition_id).in_(opposition_ids))
        .order_by(col(OppositionProfessional.user_id))
    )
    for opposition_id, user_id in session.execute(statement).all():
        found[opposition_id].append(user_id)
    return found


def members_among(
    session: Session, group_id: uuid.UUID, user_ids: Sequence[uuid.UUID], *, active_only: bool
) -> set[uuid.UUID]:
    """Which of ``user_ids`` are members of the group (not removed; active only if asked)."""
    if not user_ids:
        return set()
    statement = select(col(Membership.user_id)).where(
        col(Membership.group_id) == group_id,
        col(Membership.user_id).in_(user_ids),
        col(Membership.status) == "active" if active_only else col(Membership.status) != "removed",
    )
    return set(session.execute(statement).scalars().all())
