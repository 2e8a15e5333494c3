"""Tasks (FHIR Task semantics): create, list, read, update along valid transitions, and "what
needs me" across care groups."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from hdsapp.core.actor import Role
from tests.patients.data import fr_patient, new_ins
from tests.threads.conftest import Ward


def task(ward: Ward, who: str, tid: str, **body: Any) -> Any:
    body.setdefault("description", "Passer voir Mme Martin demain matin")
    return ward.call("POST", who, f"/api/v1/threads/{tid}/tasks", json=body)


def test_create_list_read_and_update_a_task(ward: Ward) -> None:
    tid = ward.open(participants=("nurse",))["id"]
    before = ward.world.audit_count()
    created = task(ward, "doc", tid, assignee=str(ward.users["nurse"]), due_date="2026-12-01")
    assert created.status_code == 201, created.text
    assert ward.world.audit_count() == before + 1
    body = created.json()
    assert (body["status"], body["assignee"], body["due_date"]) == (
        "requested",
        str(ward.users["nurse"]),
        "2026-12-01",
    )
    assert body["description"] == "Passer voir Mme Martin demain matin"
    listed = ward.call("GET", "nurse", f"/api/v1/threads/{tid}/tasks").json()
    assert [t["id"] for t in listed["items"]] == [body["id"]]
    url = f"/api/v1/tasks/{body['id']}"
    assert ward.call("GET", "nurse", url).json() == body
    for status in ("accepted", "in-progress", "completed"):
        moved = ward.call("PATCH", "nurse", url, json={"status": status})
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == status
    assert moved.json()["version"] == 4
    # Completed is final.
    back = ward.call("PATCH", "nurse", url, json={"status": "in-progress"})
    assert back.status_code == 409
    assert back.json()["type"].endswith("invalid-transition")
    # The description is sealed.
    with ward.world.database.session() as session:
        stored = session.execute(text("SELECT description FROM task")).scalar_one()
    assert b"Martin" not in bytes(stored)


def test_transitions_follow_the_task_status_machine(ward: Ward) -> None:
    tid = ward.open()["id"]
    url = f"/api/v1/tasks/{task(ward, 'doc', tid).json()['id']}"
    assert ward.call("PATCH", "doc", url, json={"status": "completed"}).status_code == 409
    assert ward.call("PATCH", "doc", url, json={"status": "requested"}).status_code == 200
    assert ward.call("PATCH", "doc", url, json={"status": "cancelled"}).status_code == 200
    assert ward.call("PATCH", "doc", url, json={"status": "accepted"}).status_code == 409
    other = f"/api/v1/tasks/{task(ward, 'doc', tid).json()['id']}"
    changed = ward.call(
        "PATCH",
        "doc",
        other,
        json={"description": "Appeler la pharmacie", "due_date": None, "assignee": None},
    )
    assert changed.status_code == 200
    assert (changed.json()["description"], changed.json()["due_date"]) == (
        "Appeler la pharmacie",
        None,
    )
    for bad in ({"description": ""}, {"description": None}, {"status": None}):
        assert ward.call("PATCH", "doc", other, json=bad).status_code == 422, bad
    assert ward.call("PATCH", "doc", other, json={"status": "done"}).status_code == 422


def test_bad_tasks_are_refused_audited_and_store_nothing(ward: Ward) -> None:
    tid = ward.open(participants=("nurse",))["id"]
    cases = [
        ("doc", {"assignee": str(ward.users["pharma"])}, 422, "assignee-not-participant"),
        ("doc", {"assignee": str(uuid.uuid4())}, 422, "assignee-not-participant"),
        ("doc", {"description": ""}, 422, "empty-description"),
        ("doc", {"description": "x" * 2001}, 422, "description-too-long"),
        ("pharma", {}, 403, "forbidden-not-participant"),
        ("outsider", {}, 404, "not-found"),
    ]
    for who, body, status, code in cases:
        before = ward.world.audit_count()
        response = task(ward, who, tid, **body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["type"].endswith(code)
        assert ward.world.audit_count() == before + 1
    assert ward.count("task") == 0
    ok = task(ward, "doc", tid, assignee=str(ward.users["nurse"])).json()
    reassign = {"assignee": str(ward.users["pharma"])}
    assert ward.call("PATCH", "doc", f"/api/v1/tasks/{ok['id']}", json=reassign).status_code == 422
    assert ward.call("GET", "pharma", f"/api/v1/tasks/{ok['id']}").status_code == 403
    assert ward.call("GET", "doc", f"/api/v1/tasks/{uuid.uuid4()}").status_code == 404


def test_what_needs_me_across_groups(ward: Ward) -> None:
    nurse = str(ward.users["nurse"])
    # The nurse also works in group B.
    ward.world.member(ward.gid_b, ward.users["nurse"], Role.CLINICIAN)
    a1 = ward.open(participants=("nurse",))["id"]
    a2 = ward.open(participants=("nurse",))["id"]
    soon = task(ward, "doc", a1, assignee=nurse, due_date="2026-12-01").json()
    later = task(ward, "doc", a2, assignee=nurse, due_date="2026-12-24").json()
    undated = task(ward, "doc", a1, assignee=nurse).json()
    task(ward, "doc", a1, assignee=str(ward.users["doc"]))  # someone else's
    done = task(ward, "doc", a1, assignee=nurse).json()
    ward.call("PATCH", "nurse", f"/api/v1/tasks/{done['id']}", json={"status": "cancelled"})
    patient_b = ward.call(
        "POST",
        "outsider",
        f"/api/v1/groups/{ward.gid_b}/patients",
        json=fr_patient(family="Durand", ins=new_ins()),
    )
    assert patient_b.status_code == 201, patient_b.text
    opened_b = ward.call(
        "POST",
        "outsider",
        f"/api/v1/groups/{ward.gid_b}/threads",
        json={
            "patient": f"Patient/{patient_b.json()['id']}",
            "title": "B",
            "participants": [nurse],
        },
    )
    assert opened_b.status_code == 201, opened_b.text
    in_b = task(ward, "outsider", opened_b.json()["id"], assignee=nurse, due_date="2026-12-10")
    assert in_b.status_code == 201
    mine = ward.call("GET", "nurse", "/api/v1/me/tasks")
    assert mine.status_code == 200, mine.text
    ids = [t["id"] for t in mine.json()["items"]]
    assert ids == [soon["id"], in_b.json()["id"], later["id"], undated["id"]]
    groups = {t["group_id"] for t in mine.json()["items"]}
    assert groups == {str(ward.gid), str(ward.gid_b)}
    page = ward.call("GET", "nurse", "/api/v1/me/tasks", params={"limit": 3}).json()
    rest = ward.call(
        "GET", "nurse", "/api/v1/me/tasks", params={"limit": 3, "cursor": page["next_cursor"]}
    ).json()
    assert [t["id"] for t in page["items"] + rest["items"]] == ids
    assert rest["next_cursor"] is None
    # Removed from a thread: its tasks no longer show (the policy, in SQL).
    ward.call("DELETE", "doc", f"/api/v1/threads/{a2}/participants/{nurse}")
    ids = [t["id"] for t in ward.call("GET", "nurse", "/api/v1/me/tasks").json()["items"]]
    assert later["id"] not in ids
    assert ward.call("GET", "auditor", "/api/v1/me/tasks").json()["items"] == []
