"""Tasks on a thread (FHIR Task semantics) and "what needs me"."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlmodel import Session, col

from hdsapp.config import Settings
from hdsapp.core.accesslog import AuditScope, audited
from hdsapp.core.actor import Actor
from hdsapp.core.db import Database
from hdsapp.core.errors import (
    Conflict,
)
from hdsapp.groups import pagination
from hdsapp.groups import repository as groups_repository
from hdsapp.groups import service as groups
from hdsapp.models.task import Task
from hdsapp.models.thread import Thread
from hdsapp.patients import service as patients
from hdsapp.policy import Context, Resource, ResourceType, row_plan
from hdsapp.threads import repository
from hdsapp.threads.schemas import (
    TaskCreate,
    TaskList,
    TaskPublic,
    TaskUpdate,
)
from hdsapp.threads.service.common import (
    MAX_TASK_CHARS,
    TASK_TRANSITIONS,
    Keyring,
    ThreadAccess,
    _access,
    _authorize,
    _invalid,
    _load,
    _standing,
    _task_aad,
    _text,
    authorize,
    not_found,
    patient_reference,
)
from hdsapp.threads.service.messages import _bad_cursor, _group_search, _visible


def _task_public(session: Session, keyring: Keyring, thread: Thread, task: Task) -> TaskPublic:
    description = keyring.open(session, aad=_task_aad(thread, task.id), envelope=task.description)
    return TaskPublic(
        id=task.id,
        thread_id=task.thread_id,
        group_id=thread.group_id,
        description=description.decode(),
        assignee=task.assignee_id,
        due_date=task.due_date,
        status=task.status,
        created_by=task.created_by,
        created_at=task.created_at,
        updated_at=task.updated_at,
        version=task.version,
        patient=thread.patient_reference,
    )


def _check_assignee(session: Session, thread: Thread, assignee: uuid.UUID | None) -> None:
    if assignee is not None and assignee not in repository.current_participant_ids(
        session, thread.id
    ):
        raise _invalid("assignee", "a participant of the thread", "assignee-not-participant")


def list_tasks(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> TaskList:
    access = _access("search", "E", "Task", query="Task?thread")
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session, actor, thread_id, "task.list", ResourceType.TASK, context=context, scope=scope
        )
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        rows = repository.list_tasks(session, thread_id=thread_id, after=after, limit=limit + 1)
        page = rows[:limit]
        scope.result_refs = [f"Task/{t.id}" for t in page]
        last = page[-1] if len(rows) > limit else None
        return TaskList(
            items=[_task_public(session, keyring, standing.thread, t) for t in page],
            next_cursor=pagination.encode_cursor(last.created_at, last.id) if last else None,
        )


def create_task(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
    request: TaskCreate,
) -> TaskPublic:
    with audited(session, database, actor, _access("create", "C", "Task")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "task.create",
            ResourceType.TASK,
            context=context,
            scope=scope,
        )
        assert actor.user_id is not None
        thread = standing.thread
        description = _text(
            request.description, field="description", maximum=MAX_TASK_CHARS, code="description"
        )
        _check_assignee(session, thread, request.assignee)
        task = Task(
            thread_id=thread.id,
            description=b"",
            assignee_id=request.assignee,
            due_date=request.due_date,
            created_by=actor.user_id,
            created_at=context.now,
            updated_at=context.now,
        )
        task.description = keyring.seal(
            session, aad=_task_aad(thread, task.id), plaintext=description.encode()
        )
        repository.add(session, task)
        repository.touch(session, thread.id, context.now)
        scope.resource_id = str(task.id)
        return _task_public(session, keyring, thread, task)


def _task_and_standing(
    session: Session,
    actor: Actor,
    task_id: uuid.UUID,
    action: str,
    *,
    context: Context,
    scope: AuditScope,
    for_update: bool = False,
) -> tuple[Task, ThreadAccess]:
    scope.resource_id = str(task_id)
    task = repository.task_by_id(session, task_id, for_update=for_update)
    if task is None:
        raise not_found(ResourceType.TASK)
    standing = _standing(session, actor, task.thread_id, context.now)
    _authorize(actor, action, standing, ResourceType.TASK, context=context, scope=scope)
    return task, standing


def get_task(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    task_id: uuid.UUID,
) -> TaskPublic:
    with audited(session, database, actor, _access("read", "R", "Task")) as scope:
        context = groups.policy_context(settings)
        task, standing = _task_and_standing(
            session, actor, task_id, "task.read", context=context, scope=scope
        )
        return _task_public(session, keyring, standing.thread, task)


def update_task(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    task_id: uuid.UUID,
    request: TaskUpdate,
    expected_version: int | None = None,
) -> TaskPublic:
    """Change the description, assignee (a participant, or null), due date, or status along a
    valid transition (requested -> accepted | in-progress | cancelled, accepted ->
    in-progress | cancelled, in-progress -> completed | cancelled). ``expected_version`` (the
    FHIR ``If-Match``): 412 unless it is the current version."""
    with audited(session, database, actor, _access("update", "U", "Task")) as scope:
        context = groups.policy_context(settings)
        task, standing = _task_and_standing(
            session, actor, task_id, "task.update", context=context, scope=scope, for_update=True
        )
        thread = standing.thread
        if expected_version is not None and expected_version != task.version:
            raise patients.VersionConflict(
                "The task was changed since that version.",
                extra={"current_version": task.version},
            )
        changes = request.model_fields_set
        if "description" in changes:
            if request.description is None:
                raise _invalid("description", "may not be null", "empty-description")
            description = _text(
                request.description,
                field="description",
                maximum=MAX_TASK_CHARS,
                code="description",
            )
            task.description = keyring.seal(
                session, aad=_task_aad(thread, task.id), plaintext=description.encode()
            )
        if "assignee" in changes:
            _check_assignee(session, thread, request.assignee)
            task.assignee_id = request.assignee
        if "due_date" in changes:
            task.due_date = request.due_date
        if "status" in changes:
            if request.status is None:
                raise _invalid("status", "may not be null", "invalid-status")
            if request.status != task.status:
                if request.status not in TASK_TRANSITIONS[task.status]:
                    raise Conflict(
                        f"A {task.status} task cannot become {request.status}.",
                        code="invalid-transition",
                        extra={"allowed": sorted(TASK_TRANSITIONS[task.status])},
                    )
                task.status = request.status
        task.updated_at = context.now
        task.version += 1
        repository.add(session, task)
        repository.touch(session, thread.id, context.now)
        return _task_public(session, keyring, thread, task)


def search_tasks(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    owner: uuid.UUID | None,
    statuses: Sequence[str] | None,
    patient: str | None,
    cursor: str | None,
    limit: int,
    thread_id: uuid.UUID | None = None,
) -> TaskList:
    """The tasks of the group's threads the caller may read (FHIR Task search), by assignee,
    statuses, patient and thread, oldest first, with how many match (``total``): allowed as
    listing the threads (``thread.list``), rows filtered in SQL by the row plan of
    ``task.read``."""
    asked = (
        ("owner", owner is not None),
        ("status", statuses is not None),
        ("patient", patient is not None),
        ("focus", thread_id is not None),
    )
    query = "Task?" + "&".join(f"{name}=*" for name, used in asked if used)
    access = _access("search", "E", "Task", group_id=group_id, query=query)
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        _group_search(actor, group_id, session, context, scope)
        reference = None
        if patient is not None:
            scope.patient_id, reference = patient_reference(patient)
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        criteria = repository.TaskCriteria(
            visible=_visible(actor, "task.read", context),
            group_id=group_id,
            owner=owner,
            statuses=statuses,
            patient_reference=reference,
            thread_id=thread_id,
        )
        rows = repository.search_tasks(session, where=criteria, after=after, limit=limit + 1)
        total = repository.count_tasks(session, where=criteria)
        page = rows[:limit]
        scope.result_refs = [f"Task/{t.id}" for t, _ in page]
        last = page[-1][0] if len(rows) > limit else None
        return TaskList(
            items=[_task_public(session, keyring, thread, task) for task, thread in page],
            next_cursor=pagination.encode_cursor(last.created_at, last.id) if last else None,
            total=total,
        )


def my_tasks(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    cursor: str | None,
    limit: int,
) -> TaskList:
    """What needs me: open tasks assigned to the caller, across their care groups, in threads
    they may still read (the row plan of ``task.read``, in SQL); soonest due first."""
    access = _access("search", "E", "Task", query="Task?owner=me&status=open")
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        authorize(actor, "task.list_mine", Resource(type=ResourceType.TASK), context, scope)
        assert actor.user_id is not None
        after = pagination.decode_cursor(cursor, str, dt.datetime, uuid.UUID) if cursor else None
        key = None
        if after is not None:
            try:
                key = (dt.date.fromisoformat(after[0]), after[1], after[2])
            except ValueError:
                raise _bad_cursor() from None
        visible = groups_repository.plan_predicate(
            row_plan(actor, "task.read", context),
            actor,
            col(Thread.group_id),
            repository.thread_predicates(context.now),
        )
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        rows = repository.my_tasks(
            session, visible=visible, user_id=actor.user_id, after=key, limit=limit + 1
        )
        page = rows[:limit]
        scope.result_refs = [f"Task/{t.id}" for t, _ in page]
        last = page[-1][0] if len(rows) > limit else None
        next_cursor = None
        if last is not None:
            due = last.due_date or repository.NO_DUE_DATE
            next_cursor = pagination.encode_cursor(due.isoformat(), last.created_at, last.id)
        return TaskList(
            items=[_task_public(session, keyring, thread, task) for task, thread in page],
            next_cursor=next_cursor,
        )
