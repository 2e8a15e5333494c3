"""CareTeam: a case thread and its circle of care, read and searched over
``hdsapp.threads.service`` — the use cases, policy actions (``thread.read``; ``thread.list``
with rows ``thread.read``) and audit entries of ``GET /api/v1/threads/{tid}`` and
``GET /api/v1/groups/{gid}/threads``.

- ``id``: the thread id; ``name``: the thread's title (opened only for whoever may read it);
- ``subject``: the thread's patient, ``Patient/{id}`` of the group (with its name as
  ``display``) or the absolute URL of a Patient on another FHIR server, as the thread was opened;
- ``participant[]``: the current participants, ``member`` = ``Practitioner/{user id}``,
  ``role`` = their profession (TRE-G15) when known, ``period.start`` = when they joined;
- ``status``: open -> active, closed -> inactive, archived -> inactive (FHIR has no
  "archived"); the thread's own status is kept in ``meta.tag`` (system
  ``urn:hdsapp:CodeSystem/thread-status``), its priority in the extension
  ``urn:hdsapp:StructureDefinition/thread-priority``;
- ``managingOrganization``: the care group (``Organization/{group id}``).

Search returns archived threads too (the /api list leaves them out by default).
"""

from __future__ import annotations

from typing import Any

from hdsapp.fhir_api.definition import Operation, ResourceDef
from hdsapp.fhir_api.practitioner import PROFESSION
from hdsapp.fhir_api.search import ids, page, parse_search, patient_reference, searching
from hdsapp.fhir_api.wire import FhirRequest, FhirResult, Services, instant, parse_id
from hdsapp.threads import service as threads

TYPE = "CareTeam"
THREAD_STATUS = "urn:hdsapp:CodeSystem/thread-status"
PRIORITY = "urn:hdsapp:StructureDefinition/thread-priority"
STATUS = {"open": "active", "closed": "inactive", "archived": "inactive"}


def care_team_resource(team: threads.CareTeam) -> dict[str, Any]:
    thread = team.thread
    subject: dict[str, Any] = {"reference": thread.patient}
    if thread.patient_display:
        subject["display"] = thread.patient_display
    participants = []
    for member in team.members:
        participant: dict[str, Any] = {}
        if member.profession:
            participant["role"] = [{"coding": [{"system": PROFESSION, "code": member.profession}]}]
        participant["member"] = {
            "reference": f"Practitioner/{member.user_id}",
            "display": member.display_name,
        }
        participant["period"] = {"start": instant(member.added_at)}
        participants.append(participant)
    resource: dict[str, Any] = {
        "resourceType": TYPE,
        "id": str(thread.id),
        "meta": {
            "lastUpdated": instant(thread.last_activity_at),
            "tag": [{"system": THREAD_STATUS, "code": thread.status}],
        },
        "extension": [{"url": PRIORITY, "valueCode": thread.priority}],
        "status": STATUS[thread.status],
        "name": thread.title,
        "subject": subject,
        "period": {"start": instant(thread.created_at)},
    }
    if participants:
        resource["participant"] = participants
    resource["managingOrganization"] = [{"reference": f"Organization/{thread.group_id}"}]
    return resource


def read(services: Services, request: FhirRequest) -> FhirResult:
    team = threads.get_care_team(
        **services.args(),
        thread_id=parse_id(request.id, TYPE),
    )
    resource = care_team_resource(team)
    return FhirResult(resource=resource, last_updated=resource["meta"]["lastUpdated"])


def search_type(services: Services, request: FhirRequest) -> FhirResult:
    search = parse_search(request)
    patient = search.get("patient")
    with searching():
        found = threads.search_care_teams(
            **services.args(),
            group_id=request.group_id,
            patient=None if patient is None else patient_reference(request, patient),
            ids=ids(search),
            cursor=search.cursor,
            limit=search.count,
        )
    return page(
        request,
        search,
        [(str(team.thread.id), care_team_resource(team)) for team in found.items],
        next_cursor=found.next_cursor,
        total=found.total,
    )


DEFINITION = ResourceDef(
    type=TYPE,
    documentation=(
        "A case thread's circle of care (id = thread id): subject the thread's patient, name"
        " its title, participant.member the current participants (Practitioner/{user id});"
        " status open -> active, closed and archived -> inactive (the thread status in"
        f" meta.tag, {THREAD_STATUS}). For the thread's participants, and clinicians holding"
        " a break-the-glass grant."
    ),
    versioning="no-version",
    operations=(
        Operation(code="read", action="thread.read", handler=read),
        Operation(code="search-type", action="thread.list", handler=search_type),
    ),
    search=("_id", "patient"),
)
