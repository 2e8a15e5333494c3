"""Task: a task of a case thread, read, searched, created and updated over
``hdsapp.threads.service`` — the use cases, policy actions and audit entries of
``/api/v1/tasks/{id}`` and ``/api/v1/threads/{tid}/tasks`` (``task.read``, ``task.create``,
``task.update``; search: ``thread.list`` with rows ``task.read``).

- ``focus``: ``CareTeam/{thread id}``, the thread the task belongs to (``focus`` is
  Reference(Any), "the resource being manipulated by this task"; ``basedOn`` is for the
  request it fulfils, ``partOf`` for a parent Task); ``for``: the thread's patient;
- ``description``: the task (sealed at rest, opened for whoever may read the thread);
- ``status``: requested, accepted, in-progress, completed or cancelled; ``intent``: order;
- ``owner``: the assignee (``Practitioner/{user id}``, a participant of the thread);
  ``requester``: who created it; ``restriction.period.end``: the due date (a date);
- ``meta.versionId`` / ``ETag``: the task's version.

Create takes ``status`` requested, ``intent`` order, ``description`` and ``focus``, and
optionally ``owner`` and ``restriction.period.end``. Update is a PUT of the whole resource
(``If-Match: W/"<versionId>"`` answers 412 if stale): ``description``, ``owner``, the due date
and ``status`` are replaced (an absent owner or due date clears it); a status change must follow
the transitions requested -> accepted | in-progress | cancelled, accepted -> in-progress |
cancelled, in-progress -> completed | cancelled (409 otherwise). ``focus``, ``for``,
``requester`` and the dates are the server's.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from hdsapp.core.errors import BadRequest, Unprocessable
from hdsapp.fhir_api.definition import Operation, ResourceDef
from hdsapp.fhir_api.search import (
    page,
    parse_search,
    patient_reference,
    referenced_id,
    searching,
)
from hdsapp.fhir_api.validation import check_resource, invalid, located, referenced
from hdsapp.fhir_api.wire import (
    FhirRequest,
    FhirResult,
    Services,
    if_match,
    instant,
    parse_id,
    parse_resource,
)
from hdsapp.threads import service as threads
from hdsapp.threads.schemas import TaskCreate, TaskPublic, TaskUpdate

TYPE = "Task"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
FIELD_PATHS = {
    "description": "Task.description",
    "assignee": "Task.owner",
    "due_date": "Task.restriction.period.end",
    "status": "Task.status",
}


def task_resource(task: TaskPublic) -> dict[str, Any]:
    updated = instant(task.updated_at)
    resource: dict[str, Any] = {
        "resourceType": TYPE,
        "id": str(task.id),
        "meta": {"versionId": str(task.version), "lastUpdated": updated},
        "status": task.status,
        "intent": "order",
        "description": task.description,
        "focus": {"reference": f"CareTeam/{task.thread_id}"},
    }
    if task.patient:
        resource["for"] = {"reference": task.patient}
    resource["authoredOn"] = instant(task.created_at)
    resource["lastModified"] = updated
    resource["requester"] = {"reference": f"Practitioner/{task.created_by}"}
    if task.assignee is not None:
        resource["owner"] = {"reference": f"Practitioner/{task.assignee}"}
    if task.due_date is not None:
        resource["restriction"] = {"period": {"end": task.due_date.isoformat()}}
    return resource


def result_of(task: TaskPublic, *, status: int = 200, location: str | None = None) -> FhirResult:
    resource = task_resource(task)
    return FhirResult(
        status=status,
        resource=resource,
        version=str(task.version),
        last_updated=resource["meta"]["lastUpdated"],
        location=location,
    )


def read(services: Services, request: FhirRequest) -> FhirResult:
    task = threads.get_task(
        **services.args(),
        task_id=parse_id(request.id, TYPE),
    )
    return result_of(task)


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _fields(resource: dict[str, Any], base: str, problems: list[tuple[str, str]]) -> dict[str, Any]:
    """description, assignee and due date of a Task (problems appended)."""
    description = resource.get("description")
    if not isinstance(description, str):
        problems.append(("Task.description", "the task is required"))
    if resource.get("intent") != "order":
        problems.append(("Task.intent", "a task of a thread is an order"))
    assignee = None
    if "owner" in resource:
        assignee = referenced(resource["owner"], "Practitioner", base)
        if assignee is None:
            problems.append(("Task.owner", "a reference to a Practitioner/{user id}"))
    due = None
    end = ((resource.get("restriction") or {}).get("period") or {}).get("end")
    if end is not None:
        if isinstance(end, str) and _DATE.fullmatch(end) and _is_date(end):
            due = end
        else:
            problems.append(("Task.restriction.period.end", "the due date, a date (YYYY-MM-DD)"))
    # As JSON strings: the request models take JSON, strictly.
    return {
        "description": description,
        "assignee": None if assignee is None else str(assignee),
        "due_date": due,
    }


def create(services: Services, request: FhirRequest) -> FhirResult:
    resource = parse_resource(request)
    check_resource(TYPE, resource)
    problems: list[tuple[str, str]] = []
    fields = _fields(resource, request.base, problems)
    if resource.get("status") != "requested":
        problems.append(("Task.status", "a new task is requested"))
    thread_id = referenced(resource.get("focus"), "CareTeam", request.base)
    if thread_id is None:
        problems.append(("Task.focus", "a reference to the thread: CareTeam/{id}"))
    if problems:
        raise invalid("The Task is not a task this server records.", "invalid-task", problems)
    try:
        created = threads.create_task(
            **services.args(),
            thread_id=thread_id,
            request=TaskCreate(**fields),
        )
    except Unprocessable as exc:
        raise located(exc, FIELD_PATHS, TYPE) from None
    location = request.url(TYPE, str(created.id), "_history", str(created.version))
    return result_of(created, status=201, location=location)


def update(services: Services, request: FhirRequest) -> FhirResult:
    task_id = parse_id(request.id, TYPE)
    resource = parse_resource(request)
    if resource.get("id") != request.id:
        raise BadRequest("The resource's id must be the id in the URL.", code="id-mismatch")
    check_resource(TYPE, resource)
    problems: list[tuple[str, str]] = []
    fields = _fields(resource, request.base, problems)
    status = resource.get("status")
    if status not in threads.TASK_TRANSITIONS:
        problems.append(("Task.status", "one of " + ", ".join(threads.TASK_TRANSITIONS)))
    if problems:
        raise invalid("The Task is not a task this server records.", "invalid-task", problems)
    try:
        updated = threads.update_task(
            **services.args(),
            task_id=task_id,
            request=TaskUpdate(**fields, status=status),
            expected_version=if_match(request),
        )
    except Unprocessable as exc:
        raise located(exc, FIELD_PATHS, TYPE) from None
    return result_of(updated)


def search_type(services: Services, request: FhirRequest) -> FhirResult:
    search = parse_search(request)
    owner = referenced_id(request, search, "owner", "Practitioner")
    thread_id = referenced_id(request, search, "focus", "CareTeam")
    status = search.get("status")
    patient = search.get("patient")
    with searching():
        found = threads.search_tasks(
            **services.args(),
            group_id=request.group_id,
            owner=owner,
            statuses=None if status is None else [status],
            patient=None if patient is None else patient_reference(request, patient),
            thread_id=thread_id,
            cursor=search.cursor,
            limit=search.count,
        )
    return page(
        request,
        search,
        [(str(t.id), task_resource(t)) for t in found.items],
        next_cursor=found.next_cursor,
        total=found.total,
    )


DEFINITION = ResourceDef(
    type=TYPE,
    documentation=(
        "A task of a case thread: focus = CareTeam/{thread id}, owner the assignee (a"
        " participant), restriction.period.end the due date; status requested, accepted,"
        " in-progress, completed or cancelled, along the valid transitions (409 otherwise)."
    ),
    versioning="versioned-update",
    example="examples/Task-request.json",
    operations=(
        Operation(code="read", action="task.read", handler=read),
        Operation(
            code="update",
            action="task.update",
            handler=update,
            documentation=(
                'The whole Task; If-Match: W/"<versionId>" answers 412 if stale; an invalid'
                " status transition 409."
            ),
        ),
        Operation(code="create", action="task.create", handler=create),
        Operation(
            code="search-type", action="thread.list", also=("task.read",), handler=search_type
        ),
    ),
    search=("owner", "status", "patient", "focus"),
)
