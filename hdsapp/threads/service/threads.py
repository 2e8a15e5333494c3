"""Opening, reading, listing and updating case threads."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session, col

from hdsapp.config import Settings
from hdsapp.core.accesslog import audited
from hdsapp.core.actor import Actor
from hdsapp.core.db import Database
from hdsapp.groups import pagination
from hdsapp.groups import repository as groups_repository
from hdsapp.groups import service as groups
from hdsapp.models.thread import Thread
from hdsapp.models.thread_participant import ThreadParticipant
from hdsapp.models.user import User
from hdsapp.patients import service as patients
from hdsapp.policy import Resource, ResourceType, row_plan
from hdsapp.threads import repository
from hdsapp.threads.schemas import (
    ParticipantPublic,
    ThreadCreate,
    ThreadList,
    ThreadPublic,
    ThreadUpdate,
)
from hdsapp.threads.service.common import (
    DEFAULT_STATUSES,
    EMERGENCY,
    MAX_TITLE_CHARS,
    THREAD_STATUSES,
    Keyring,
    _access,
    _invalid,
    _load,
    _text,
    _title_aad,
    authorize,
    patient_reference,
)


@dataclass(frozen=True, slots=True)
class CareTeam:
    """A thread and its circle of care (current participants), as FHIR serves it."""

    thread: ThreadPublic
    members: list[ParticipantPublic]


@dataclass(frozen=True, slots=True)
class CareTeamList:
    items: list[CareTeam]
    next_cursor: str | None
    total: int | None = None  # the matching threads the caller may read, if asked


def _participant_public(row: ThreadParticipant, user: User) -> ParticipantPublic:
    return ParticipantPublic(
        user_id=row.user_id,
        display_name=user.display_name,
        profession=user.profession,
        added_at=row.added_at,
        added_by=row.added_by,
        shares_history=row.visible_from_seq == 0,
    )


def _members(
    session: Session, thread_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ParticipantPublic]]:
    found: dict[uuid.UUID, list[ParticipantPublic]] = {}
    for row, user in repository.current_participants(session, thread_ids):
        found.setdefault(row.thread_id, []).append(_participant_public(row, user))
    return found


def _thread_public(
    session: Session,
    keyring: Keyring,
    row: repository.ThreadRow,
    display: dict[uuid.UUID, str],
) -> ThreadPublic:
    thread = row.thread
    title = keyring.open(session, aad=_title_aad(thread), envelope=thread.title).decode()
    grant_expiry = None if row.participant else row.grant_expires_at
    return ThreadPublic(
        id=thread.id,
        group_id=thread.group_id,
        patient=thread.patient_reference,
        patient_display=display.get(thread.patient_id) if thread.patient_id else None,
        title=title,
        priority=thread.priority,
        status=thread.status,
        created_by=thread.created_by,
        created_at=thread.created_at,
        last_activity_at=thread.last_activity_at,
        last_seq=thread.last_seq,
        unread=row.unread,
        read_seq=row.read_seq,
        access="participant"
        if row.participant
        else "break-glass"
        if grant_expiry
        else "coordinator",
        break_glass_expires_at=grant_expiry,
    )


def _display(
    session: Session, keyring: Keyring, group_id: uuid.UUID, threads: Sequence[Thread]
) -> dict[uuid.UUID, str]:
    ids = [t.patient_id for t in threads if t.patient_id is not None]
    if not ids:
        return {}
    return patients.display_names(
        session=session, keyring=keyring, group_id=group_id, patient_ids=ids
    )


def _one_thread(
    session: Session, keyring: Keyring, actor: Actor, thread: Thread, now: dt.datetime
) -> ThreadPublic:
    row = repository.thread_row(session, thread.id, actor.user_id, now)
    assert row is not None
    return _thread_public(
        session, keyring, row, _display(session, keyring, thread.group_id, [thread])
    )


def open_thread(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    request: ThreadCreate,
) -> ThreadPublic:
    """Open a thread about a patient (201). The creator is always a participant; the others
    must be active clinicians or coordinators of the group. Refused (403) when an opposition
    of the patient covers the caller."""
    access = _access("create", "C", "CareTeam", group_id=group_id)
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        patient_id, reference = patient_reference(request.patient)
        scope.patient_id = patient_id
        in_group = actor.role_in(group_id) is not None and actor.user_id is not None
        patient = (
            patient_id is not None
            and in_group
            and repository.patient_in_group(session, group_id, patient_id)
        )
        opposed = (
            patient
            and patient_id is not None
            and actor.user_id is not None
            and patients.opposition_applies(session, patient_id=patient_id, user_id=actor.user_id)
        )
        resource = Resource(
            type=ResourceType.THREAD, group_id=group_id, opposition_applies=bool(opposed)
        )
        authorize(actor, "thread.create", resource, context, scope)
        assert actor.user_id is not None
        if groups_repository.group_by_id(session, group_id) is None:
            raise groups.not_found(ResourceType.GROUP)
        if patient_id is not None and not patient:
            raise _invalid("patient", "no such patient in this care group", "unknown-patient")
        title = _text(request.title, field="title", maximum=MAX_TITLE_CHARS, code="title")
        others = sorted(set(request.participants) - {actor.user_id})
        allowed = repository.care_members_among(session, group_id, others, now=context.now)
        if set(others) - allowed:
            raise _invalid(
                "participants",
                "participants are active clinicians or coordinators of the group",
                "invalid-participants",
            )
        thread = Thread(
            group_id=group_id,
            patient_id=patient_id,
            patient_reference=reference,
            title=b"",
            priority=request.priority,
            created_by=actor.user_id,
            created_at=context.now,
            updated_at=context.now,
            last_activity_at=context.now,
        )
        keyring.create_thread_key(session, group_id=group_id, thread_id=thread.id)
        thread.title = keyring.seal(session, aad=_title_aad(thread), plaintext=title.encode())
        repository.add(session, thread)
        repository.add(
            session,
            *(
                ThreadParticipant(
                    thread_id=thread.id, user_id=user, added_by=actor.user_id, added_at=context.now
                )
                for user in [actor.user_id, *others]
            ),
        )
        scope.resource_id = str(thread.id)
        return _one_thread(session, keyring, actor, thread, context.now)


def list_threads(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    status: str | None,
    patient: str | None,
    unread: bool,
    cursor: str | None,
    limit: int,
) -> ThreadList:
    """The threads of the group the caller may read (their own, and those they hold an
    unexpired break-the-glass grant on), most recent activity first, with unread counts;
    filtered in SQL by the policy's row plan of ``thread.read``."""
    query = "CareTeam?" + "&".join(
        part
        for part in (
            f"status={status}" if status else "",
            "patient=*" if patient else "",
            "unread=true" if unread else "",
        )
        if part
    )
    found = _list_threads(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        where=ThreadFilter(
            group_id=group_id,
            query=query,
            statuses=(status,) if status else DEFAULT_STATUSES,
            patient=patient,
            unread=unread,
        ),
        cursor=cursor,
        limit=limit,
        members=False,
        with_total=False,
    )
    return ThreadList(items=[team.thread for team in found.items], next_cursor=found.next_cursor)


def search_care_teams(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    patient: str | None,
    ids: Sequence[uuid.UUID] | None,
    cursor: str | None,
    limit: int,
) -> CareTeamList:
    """The threads of the group the caller may read, in every status (archived included),
    with their circles of care (FHIR CareTeam search): the use case, policy action
    (``thread.list``, rows ``thread.read``) and audit entry of ``list_threads``."""
    asked = (("patient", patient is not None), ("_id", ids is not None))
    query = "CareTeam?" + "&".join(f"{name}=*" for name, used in asked if used)
    return _list_threads(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        where=ThreadFilter(
            group_id=group_id, query=query, statuses=THREAD_STATUSES, patient=patient, ids=ids
        ),
        cursor=cursor,
        limit=limit,
        members=True,
        with_total=True,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ThreadFilter:
    group_id: uuid.UUID
    query: str  # for the audit entry: the parameters used, never their values
    statuses: Sequence[str]
    patient: str | None = None
    ids: Sequence[uuid.UUID] | None = None
    unread: bool = False


def _list_threads(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    where: ThreadFilter,
    cursor: str | None,
    limit: int,
    members: bool,
    with_total: bool,
) -> CareTeamList:
    """A page of the threads ``where`` selects; ``with_total``: and how many there are in all
    (not for ``where.unread``)."""
    group_id = where.group_id
    access = _access("search", "E", "CareTeam", group_id=group_id, query=where.query)
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        resource = Resource(type=ResourceType.THREAD, group_id=group_id)
        authorize(actor, "thread.list", resource, context, scope)
        if groups_repository.group_by_id(session, group_id) is None:
            raise groups.not_found(ResourceType.GROUP)
        reference = patient_reference(where.patient)[1] if where.patient else None
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        plan = row_plan(actor, "thread.read", context)
        visible = groups_repository.plan_predicate(
            plan, actor, col(Thread.group_id), repository.thread_predicates(context.now)
        )
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        criteria = repository.ThreadCriteria(
            visible=visible,
            group_id=group_id,
            statuses=where.statuses,
            patient_reference=reference,
            ids=where.ids,
        )
        rows = repository.list_threads(
            session,
            where=criteria,
            user_id=actor.user_id,
            now=context.now,
            unread_only=where.unread,
            after=after,
            limit=limit + 1,
        )
        total = None
        if with_total:
            if where.unread:
                raise ValueError("an unread-only list is not counted")
            total = repository.count_threads(session, where=criteria)
        page = rows[:limit]
        display = _display(session, keyring, group_id, [r.thread for r in page])
        circles = _members(session, [r.thread.id for r in page]) if members else {}
        items = [
            CareTeam(
                thread=_thread_public(session, keyring, row, display),
                members=circles.get(row.thread.id, []),
            )
            for row in page
        ]
        scope.result_refs = [f"CareTeam/{r.thread.id}" for r in page]
        if any(not r.participant for r in page):
            # Some are visible through break-the-glass only: an emergency read.
            scope.purpose_of_use = "ETREAT"
            scope.legal_basis = EMERGENCY
            scope.reason = "break-the-glass: threads listed under a grant"
        last = page[-1].thread if len(rows) > limit else None
        return CareTeamList(
            items=items,
            next_cursor=pagination.encode_cursor(last.last_activity_at, last.id) if last else None,
            total=total,
        )


def get_thread(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
) -> ThreadPublic:
    found = _read_thread(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        thread_id=thread_id,
        members=False,
    )
    return found.thread


def get_care_team(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
) -> CareTeam:
    """The thread with its circle of care (FHIR CareTeam read): the use case, policy action
    (``thread.read``) and audit entry of ``get_thread``."""
    return _read_thread(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        thread_id=thread_id,
        members=True,
    )


def _read_thread(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
    members: bool,
) -> CareTeam:
    with audited(session, database, actor, _access("read", "R", "CareTeam")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "thread.read",
            ResourceType.THREAD,
            context=context,
            scope=scope,
        )
        public = _one_thread(session, keyring, actor, standing.thread, context.now)
        found = _members(session, [public.id]) if members else {}
        return CareTeam(thread=public, members=found.get(public.id, []))


def update_thread(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
    request: ThreadUpdate,
) -> ThreadPublic:
    """Change the title, the priority or the status (open, closed, archived)."""
    with audited(session, database, actor, _access("update", "U", "CareTeam")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "thread.update",
            ResourceType.THREAD,
            context=context,
            scope=scope,
            lock=True,
        )
        thread = standing.thread
        changes = request.model_fields_set
        for name in ("title", "priority", "status"):
            if name in changes and getattr(request, name) is None:
                raise _invalid(name, "may not be null", f"invalid-{name}")
        if request.title is not None:
            title = _text(request.title, field="title", maximum=MAX_TITLE_CHARS, code="title")
            thread.title = keyring.seal(session, aad=_title_aad(thread), plaintext=title.encode())
        if request.priority is not None:
            thread.priority = request.priority
        if request.status is not None:
            thread.status = request.status
        thread.updated_at = context.now
        thread.version += 1
        repository.add(session, thread)
        return _one_thread(session, keyring, actor, thread, context.now)
