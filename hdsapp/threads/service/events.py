"""Live updates: a caller's stream of thread counters (ids and counts, never content)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import anyio.to_thread
from sqlmodel import Session, col

from hdsapp.config import Settings
from hdsapp.core.accesslog import audited
from hdsapp.core.actor import Actor
from hdsapp.core.db import Database
from hdsapp.core.errors import (
    Forbidden,
)
from hdsapp.groups import repository as groups_repository
from hdsapp.groups import service as groups
from hdsapp.models.thread import Thread
from hdsapp.policy import Resource, ResourceType, decide, row_plan
from hdsapp.threads import repository
from hdsapp.threads.schemas import (
    ThreadEvent,
)
from hdsapp.threads.service.common import DEFAULT_STATUSES, _access, authorize

EVENTS_QUERY = "CareTeam?_stream=events"
#: What a browser waits before reconnecting once a stream ended (the SSE ``retry:`` field).
EVENTS_RETRY_MS = 2000

Counters = dict[uuid.UUID, tuple[uuid.UUID, int, int]]  # thread -> (group, last seq, read seq)


@dataclass(frozen=True, slots=True)
class EventStream:
    """The live stream of one caller, authorized and recorded when it was opened. Each poll
    opens a short session of its own (never the request's, never across the stream), asks the
    policy's row plan of ``thread.read`` again (a participation or grant that ended stops the
    events of that thread), and reads ids and counters only."""

    database: Database
    actor: Actor
    settings: Settings

    def poll(self, known: Counters | None) -> tuple[Counters, list[ThreadEvent]]:
        """The counters now, and an event for each thread whose counters changed since
        ``known`` (none on the first poll: it is the baseline)."""
        assert self.actor.user_id is not None
        context = groups.policy_context(self.settings)
        visible = groups_repository.plan_predicate(
            row_plan(self.actor, "thread.read", context),
            self.actor,
            col(Thread.group_id),
            repository.thread_predicates(context.now),
        )
        with self.database.session() as session:
            rows = repository.thread_counters(
                session, visible=visible, user_id=self.actor.user_id, statuses=DEFAULT_STATUSES
            )
            now: Counters = {tid: (gid, last, read) for tid, gid, last, read in rows}
            changed = (
                []
                if known is None
                else sorted(tid for tid, counters in now.items() if known.get(tid) != counters)
            )
            unread = repository.unread_counts(session, changed, self.actor.user_id, context.now)
        events = [
            ThreadEvent(
                thread=tid,
                group=now[tid][0],
                last_seq=now[tid][1],
                read_seq=now[tid][2],
                unread=unread.get(tid, 0),
            )
            for tid in changed
        ]
        return now, events

    async def events(self) -> AsyncIterator[str]:
        """Server-Sent Events: ``ready`` once the baseline is taken (the client then catches
        up through the API), a ``thread`` event per change, a comment every
        ``HDS_EVENTS_HEARTBEAT_SECONDS``, and the end after ``HDS_EVENTS_STREAM_SECONDS``."""
        settings = self.settings
        started = time.monotonic()
        known, _ = await anyio.to_thread.run_sync(self.poll, None)
        yield f"retry: {EVENTS_RETRY_MS}\nevent: ready\ndata: {{}}\n\n"
        said = time.monotonic()
        while time.monotonic() - started < settings.events_stream_seconds:
            await anyio.sleep(settings.events_poll_seconds)
            known, events = await anyio.to_thread.run_sync(self.poll, known)
            for event in events:
                yield f"event: thread\ndata: {event.model_dump_json()}\n\n"
                said = time.monotonic()
            if time.monotonic() - said >= settings.events_heartbeat_seconds:
                yield ": alive\n\n"
                said = time.monotonic()


def open_events(
    *, session: Session, database: Database, actor: Actor, settings: Settings
) -> EventStream:
    """Open the caller's live stream of thread counters: allowed when ``thread.list`` is
    allowed in one of their care groups at least; one audit entry for the opening (the
    messages are then read through the messages API, each read recorded)."""
    access = _access("search", "E", "CareTeam", query=EVENTS_QUERY)
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        decisions = {
            group_id: decide(
                actor, "thread.list", Resource(type=ResourceType.THREAD, group_id=group_id), context
            )
            for group_id in sorted(actor.memberships)
        }
        allowed = [group_id for group_id, decision in decisions.items() if decision.allowed]
        if actor.user_id is not None and not decisions:
            scope.outcome_desc = "policy:not-member"
            raise Forbidden("You take part in no care group.", code="forbidden-not-member")
        # The refusal of the first group when none allows it (or 401 when unauthenticated);
        # else the legal basis of the first that does.
        first = allowed[0] if allowed else next(iter(decisions), None)
        authorize(
            actor, "thread.list", Resource(type=ResourceType.THREAD, group_id=first), context, scope
        )
        if len(allowed) == 1:
            scope.group_id = allowed[0]
        return EventStream(database=database, actor=actor, settings=settings)
