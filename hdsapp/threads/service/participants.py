"""The circle of care of a thread: listing, adding and removing participants."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlmodel import Session

from hdsapp.config import Settings
from hdsapp.core.accesslog import audited
from hdsapp.core.actor import Actor
from hdsapp.core.db import Database
from hdsapp.core.errors import (
    Conflict,
    NotFound,
)
from hdsapp.groups import pagination
from hdsapp.groups import repository as groups_repository
from hdsapp.groups import service as groups
from hdsapp.models.thread_participant import ThreadParticipant
from hdsapp.policy import ResourceType
from hdsapp.threads import repository
from hdsapp.threads.schemas import (
    ParticipantAdd,
    ParticipantList,
    ParticipantPublic,
)
from hdsapp.threads.service.common import _access, _invalid, _load
from hdsapp.threads.service.threads import _participant_public


def list_participants(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    thread_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> ParticipantList:
    access = _access("search", "E", "CareTeam", query="CareTeam.participant")
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        _load(
            session,
            actor,
            thread_id,
            "participant.list",
            ResourceType.PARTICIPANT,
            context=context,
            scope=scope,
        )
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        rows = repository.list_participants(
            session, thread_id=thread_id, after=after, limit=limit + 1
        )
        page = rows[:limit]
        last = page[-1][0] if len(rows) > limit else None
        return ParticipantList(
            items=[_participant_public(p, u) for p, u in page],
            next_cursor=pagination.encode_cursor(last.added_at, last.id) if last else None,
        )


def add_participant(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    thread_id: uuid.UUID,
    request: ParticipantAdd,
) -> ParticipantPublic:
    """Add an active clinician or coordinator of the group to the circle of care (201); the
    history is shared unless ``share_history`` is false. A removed participant comes back."""
    with audited(session, database, actor, _access("update", "U", "CareTeam")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "participant.add",
            ResourceType.PARTICIPANT,
            context=context,
            scope=scope,
            lock=True,
        )
        thread = standing.thread
        if not repository.care_members_among(
            session, thread.group_id, [request.user_id], now=context.now
        ):
            raise _invalid(
                "user_id",
                "an active clinician or coordinator of the group",
                "invalid-participant",
            )
        row = repository.participant(session, thread.id, request.user_id, for_update=True)
        if row is not None and row.removed_at is None:
            raise Conflict("Already a participant of this thread.", code="already-a-participant")
        row = row or ThreadParticipant(thread_id=thread.id, user_id=request.user_id)
        row.visible_from_seq = 0 if request.share_history else thread.last_seq
        row.added_by = actor.user_id
        row.added_at = context.now
        row.removed_at = None
        row.removed_by = None
        repository.add(session, row)
        user = groups_repository.user_by_id(session, request.user_id)
        assert user is not None
        return _participant_public(row, user)


def remove_participant(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    thread_id: uuid.UUID,
    user_id: uuid.UUID,
) -> None:
    """Remove a participant (204): they lose access at their next request."""
    with audited(session, database, actor, _access("update", "U", "CareTeam")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "participant.remove",
            ResourceType.PARTICIPANT,
            context=context,
            scope=scope,
            lock=True,
        )
        row = repository.participant(session, standing.thread.id, user_id, for_update=True)
        if row is None or row.removed_at is not None:
            raise NotFound("No such participant in this thread.", code="not-a-participant")
        row.removed_at = context.now
        row.removed_by = actor.user_id
        repository.add(session, row)
