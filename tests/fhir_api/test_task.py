"""Task over FHIR: the tasks of case threads, read, searched, created and updated through the
threads service (the policy, the transitions and the audit entries of /api/v1/tasks)."""

from __future__ import annotations

import copy
import json
from functools import partial
from typing import Any

import pytest
from fhir.resources.R4B.task import Task

from tests.fhir_api.conftest import Ward, audited_once, fhir_call, result_refs
from tests.fhir_api.test_careteam import ids, pages
from tests.fhir_api.test_resources import ok, refused


def new_task(tid: str, *, owner: str | None = None, due: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "description": "Passer voir Mme X demain matin",
        "focus": {"reference": f"CareTeam/{tid}"},
    }
    if owner is not None:
        resource["owner"] = {"reference": f"Practitioner/{owner}"}
    if due is not None:
        resource["restriction"] = {"period": {"end": due}}
    return resource


def create(ward: Ward, who: str, resource: dict[str, Any]) -> dict[str, Any]:
    return ok(fhir_call(ward, who, "POST", "Task", resource=resource), 201)


def test_create_read_and_update_a_task(ward: Ward) -> None:
    tid = ward.open("doc", participants=("nurse",))["id"]
    nurse = str(ward.users["nurse"])
    response, entry = audited_once(
        ward,
        lambda: fhir_call(
            ward, "doc", "POST", "Task", resource=new_task(tid, owner=nurse, due="2030-05-01")
        ),
    )
    task = ok(response, 201)
    Task.model_validate(task)
    assert entry["kind"] == "create"
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"].endswith(f"/Task/{task['id']}/_history/1")
    assert task["status"] == "requested"
    assert task["focus"] == {"reference": f"CareTeam/{tid}"}
    assert task["for"] == {"reference": f"Patient/{ward.pid}"}
    assert task["owner"] == {"reference": f"Practitioner/{nurse}"}
    assert task["requester"] == {"reference": f"Practitioner/{ward.users['doc']}"}
    assert task["restriction"] == {"period": {"end": "2030-05-01"}}
    api = ward.call("GET", "nurse", f"/api/v1/tasks/{task['id']}").json()
    assert (api["description"], api["assignee"], api["due_date"]) == (
        "Passer voir Mme X demain matin",
        nurse,
        "2030-05-01",
    )
    response, entry = audited_once(
        ward, lambda: fhir_call(ward, "nurse", "GET", f"Task/{task['id']}")
    )
    assert ok(response) == task
    assert entry["kind"] == "read"
    assert result_refs(json.loads(entry["event"])) == [f"Task/{task['id']}"]
    # The owner accepts it (If-Match on the version), then completes it.
    accepted = {**task, "status": "accepted"}
    response, entry = audited_once(
        ward,
        lambda: fhir_call(
            ward,
            "nurse",
            "PUT",
            f"Task/{task['id']}",
            resource=accepted,
            headers={"If-Match": 'W/"1"'},
        ),
    )
    assert ok(response)["status"] == "accepted"
    assert response.headers["etag"] == 'W/"2"'
    assert entry["kind"] == "update"
    stale = refused(
        fhir_call(
            ward,
            "nurse",
            "PUT",
            f"Task/{task['id']}",
            resource=accepted,
            headers={"If-Match": 'W/"1"'},
        ),
        412,
    )
    assert "current version: 2" in json.dumps(stale)
    done = ok(
        fhir_call(
            ward, "nurse", "PUT", f"Task/{task['id']}", resource={**task, "status": "in-progress"}
        )
    )
    assert done["meta"]["versionId"] == "3"
    # A PUT replaces: no owner, no due date.
    cleared = {k: v for k, v in done.items() if k not in {"owner", "restriction"}}
    replaced = ok(fhir_call(ward, "nurse", "PUT", f"Task/{task['id']}", resource=cleared))
    assert "owner" not in replaced
    assert "restriction" not in replaced


def test_invalid_transitions_are_409(ward: Ward) -> None:
    tid = ward.open("doc", participants=())["id"]
    task = create(ward, "doc", new_task(tid))
    body = refused(
        fhir_call(
            ward, "doc", "PUT", f"Task/{task['id']}", resource={**task, "status": "completed"}
        ),
        409,
    )
    assert body["issue"][0]["code"] == "conflict"
    cancelled = ok(
        fhir_call(
            ward, "doc", "PUT", f"Task/{task['id']}", resource={**task, "status": "cancelled"}
        )
    )
    refused(
        fhir_call(
            ward, "doc", "PUT", f"Task/{task['id']}", resource={**cancelled, "status": "requested"}
        ),
        409,
    )
    for status in ("on-hold", "draft"):
        body = refused(
            fhir_call(
                ward, "doc", "PUT", f"Task/{task['id']}", resource={**cancelled, "status": status}
            ),
            422,
        )
        assert "Task.status" in json.dumps(body)
    refused(fhir_call(ward, "doc", "PUT", f"Task/{task['id']}", resource={**task, "id": tid}), 400)
    refused(
        fhir_call(
            ward, "doc", "PUT", f"Task/{task['id']}", resource=task, headers={"If-Match": "3"}
        ),
        400,
    )


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda t: t.update(status="accepted"), "Task.status"),
        (lambda t: t.update(intent="plan"), "Task.intent"),
        (lambda t: t.pop("description"), "Task.description"),
        (lambda t: t.update(description=" "), "Task.description"),
        (lambda t: t.pop("focus"), "Task.focus"),
        (lambda t: t.update(focus={"reference": "Patient/1"}), "Task.focus"),
        (lambda t: t.update(owner={"reference": "Organization/1"}), "Task.owner"),
        (
            lambda t: t.update(
                owner={"reference": "Practitioner/00000000-0000-4000-8000-000000000bad"}
            ),
            "Task.owner",
        ),
        (
            lambda t: t.update(restriction={"period": {"end": "2030-05-01T10:00:00Z"}}),
            "Task.restriction.period.end",
        ),
        (
            lambda t: t.update(restriction={"period": {"end": "2030-02-30"}}),
            "Task.restriction.period.end",
        ),
        (lambda t: t.update(status=1), "Task.status"),
        (lambda t: t.update(resourceType="Communication"), "Task.resourceType"),
    ],
)
def test_tasks_this_server_does_not_record_are_422(ward: Ward, change: Any, path: str) -> None:
    tid = ward.open("doc", participants=())["id"]
    resource = copy.deepcopy(new_task(tid))
    change(resource)
    body = refused(fhir_call(ward, "doc", "POST", "Task", resource=resource), 422)
    assert path in [e for issue in body["issue"] for e in issue.get("expression", [])], body
    assert ward.call("GET", "doc", f"/api/v1/threads/{tid}/tasks").json()["items"] == []


def test_who_may_create_and_read_tasks(ward: Ward) -> None:
    tid = ward.open("doc", participants=())["id"]
    task = create(ward, "doc", new_task(tid))
    for who, status in (("pharma", 403), ("coord", 403), ("auditor", 403), ("outsider", 404)):
        refused(fhir_call(ward, who, "POST", "Task", resource=new_task(tid)), status)
        response, _ = audited_once(ward, partial(fhir_call, ward, who, "GET", f"Task/{task['id']}"))
        refused(response, status)
        refused(fhir_call(ward, who, "PUT", f"Task/{task['id']}", resource=task), status)
    refused(fhir_call(ward, "doc", "GET", "Task/00000000-0000-4000-8000-000000000bad"), 404)
    refused(
        fhir_call(
            ward, "doc", "POST", "Task", resource=new_task("00000000-0000-4000-8000-000000000bad")
        ),
        404,
    )


def test_search_by_owner_status_and_patient(ward: Ward) -> None:
    first = ward.open("doc", participants=("nurse",))["id"]
    other_pid = ward.register_patient()
    second = ward.open("doc", participants=("nurse",), patient=f"Patient/{other_pid}")["id"]
    hidden = ward.open("pharma", participants=())["id"]
    nurse = str(ward.users["nurse"])
    a = create(ward, "doc", new_task(first, owner=nurse))
    b = create(ward, "doc", new_task(first))
    c = create(ward, "doc", new_task(second, owner=nurse))
    create(ward, "pharma", new_task(hidden))
    ok(fhir_call(ward, "nurse", "PUT", f"Task/{c['id']}", resource={**c, "status": "accepted"}))
    response, entry = audited_once(ward, lambda: fhir_call(ward, "doc", "GET", "Task"))
    assert ids(ok(response)) == [a["id"], b["id"], c["id"]]
    assert entry["kind"] == "search"
    assert result_refs(json.loads(entry["event"])) == [f"Task/{t['id']}" for t in (a, b, c)]
    for query, expected in [
        (f"owner=Practitioner/{nurse}", [a, c]),
        (f"owner={nurse}&status=accepted", [c]),
        ("status=requested", [a, b]),
        ("status=on-hold", []),
        (f"patient=Patient/{ward.pid}", [a, b]),
        (f"patient={other_pid}&owner={nurse}", [c]),
    ]:
        assert ids(ok(fhir_call(ward, "doc", "GET", f"Task?{query}"))) == [
            t["id"] for t in expected
        ], query
    page = ok(fhir_call(ward, "doc", "GET", "Task?_count=2"))
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    assert ids(ok(ward.call("GET", "doc", following.removeprefix("https://testserver")))) == [
        c["id"]
    ]
    assert ids(ok(fhir_call(ward, "pharma", "GET", "Task"))) != []
    assert a["id"] not in ids(ok(fhir_call(ward, "pharma", "GET", "Task")))
    for query in ("owner=Group/1", "patient=Group/1", "focus=x", "foo=1"):
        refused(fhir_call(ward, "doc", "GET", f"Task?{query}"), 400)
    refused(fhir_call(ward, "auditor", "GET", "Task"), 403)
    refused(fhir_call(ward, "outsider", "GET", "Task"), 404)


def test_total_counts_the_readable_tasks_across_pages(ward: Ward) -> None:
    first = ward.open("doc", participants=("nurse",))["id"]
    second = ward.open("doc", participants=())["id"]
    hidden = ward.open("pharma", participants=())["id"]
    nurse = str(ward.users["nurse"])
    for _ in range(3):
        create(ward, "doc", new_task(first, owner=nurse))
        create(ward, "doc", new_task(second))
        create(ward, "pharma", new_task(hidden))
    found = pages(ward, "doc", "Task?_count=4")
    assert [page["total"] for page in found] == [6, 6]
    assert [page["total"] for page in pages(ward, "doc", f"Task?owner={nurse}&_count=2")] == [3, 3]
    assert pages(ward, "doc", "Task?status=requested&_count=5")[0]["total"] == 6
    assert pages(ward, "nurse", "Task?_count=2")[0]["total"] == 3
    assert pages(ward, "pharma", "Task?_count=2")[0]["total"] == 3
    assert pages(ward, "physio", "Task")[0]["total"] == 0


def test_search_by_focus(ward: Ward) -> None:
    first = ward.open("doc", participants=())["id"]
    second = ward.open("doc", participants=())["id"]
    hidden = ward.open("pharma", participants=())["id"]
    a = create(ward, "doc", new_task(first))
    b = create(ward, "doc", new_task(first))
    create(ward, "doc", new_task(second))
    create(ward, "pharma", new_task(hidden))
    for focus in (f"CareTeam/{first}", first):
        found = pages(ward, "doc", f"Task?focus={focus}&_count=1")
        assert [i for page in found for i in ids(page)] == [a["id"], b["id"]]
    # A thread the caller may not read matches nothing.
    assert pages(ward, "doc", f"Task?focus=CareTeam/{hidden}")[0]["total"] == 0
    assert ids(ok(fhir_call(ward, "doc", "GET", f"Task?focus={first}&status=completed"))) == []
    for query in ("focus=x", "focus=Patient/1", f"focus=Task/{a['id']}"):
        refused(fhir_call(ward, "doc", "GET", f"Task?{query}"), 400)
