"""Break-the-glass: time-boxed emergency read access, audited and notified."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from sqlmodel import Session

from hdsapp.config import Settings
from hdsapp.core.accesslog import audited
from hdsapp.core.actor import Actor
from hdsapp.core.db import Database
from hdsapp.groups import service as groups
from hdsapp.models.break_glass_grant import BreakGlassGrant
from hdsapp.models.notification_event import NotificationEvent
from hdsapp.policy import ResourceType
from hdsapp.threads import repository
from hdsapp.threads.schemas import (
    BreakGlassCreate,
    BreakGlassPublic,
)
from hdsapp.threads.service.common import (
    MAX_REASON_CHARS,
    MIN_REASON_CHARS,
    _access,
    _invalid,
    _load,
)


def break_glass(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    thread_id: uuid.UUID,
    request: BreakGlassCreate,
) -> BreakGlassPublic:
    """Emergency read access to a thread of the group for a clinician who is not a
    participant: a stated reason (≥ 20 characters), a recent authentication (step-up),
    ``HDS_BREAK_GLASS_MINUTES`` (60) of read-only access, every read recorded as ETREAT; the
    group's coordinators are notified. Never across groups, never over an opposition."""
    access = dataclasses.replace(_access("break-glass", "E", "CareTeam"), purpose_of_use="ETREAT")
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "grant.create",
            ResourceType.GRANT,
            context=context,
            scope=scope,
        )
        assert actor.user_id is not None
        reason = " ".join(request.reason.split())
        if len(reason) < MIN_REASON_CHARS:
            raise _invalid("reason", f"at least {MIN_REASON_CHARS} characters", "reason-too-short")
        if len(reason) > MAX_REASON_CHARS:
            raise _invalid("reason", f"at most {MAX_REASON_CHARS} characters", "reason-too-long")
        thread = standing.thread
        grant = BreakGlassGrant(
            thread_id=thread.id,
            user_id=actor.user_id,
            created_at=context.now,
            expires_at=context.now + dt.timedelta(minutes=settings.break_glass_minutes),
        )
        repository.add(session, grant)
        coordinators = repository.active_coordinator_ids(session, thread.group_id, now=context.now)
        repository.add(
            session,
            *(
                NotificationEvent(
                    group_id=thread.group_id,
                    recipient_id=coordinator,
                    kind="break-glass",
                    thread_id=thread.id,
                    subject_id=grant.id,
                    actor_id=actor.user_id,
                    created_at=context.now,
                )
                for coordinator in coordinators
            ),
        )
        scope.purpose_of_use = "ETREAT"
        scope.reason = reason
        scope.result_refs = [f"urn:uuid:{grant.id}"]
        return BreakGlassPublic(
            id=grant.id,
            thread_id=thread.id,
            user_id=actor.user_id,
            created_at=grant.created_at,
            expires_at=grant.expires_at,
        )
