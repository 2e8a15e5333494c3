"""Threads: open, list (unread counts, filters, cursor), read, update, participants, oppositions,
external patients; through the HTTP API with real tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import text

from tests.threads.conftest import Ward

EXTERNAL = "https://fhir.chu-exemple.fr/fhir/Patient/4567"


def test_open_read_and_list_a_thread(ward: Ward) -> None:
    before = ward.world.audit_count()
    thread = ward.open(participants=("nurse", "pharma"), priority="urgent")
    assert ward.world.audit_count() == before + 1
    entry = ward.world.audit_tail()[0]
    assert (entry["kind"], entry["outcome"]) == ("create", 0)
    assert str(entry["patient_id"]).replace("-", "") == ward.pid.replace("-", "")
    assert thread["patient"] == f"Patient/{ward.pid}"
    assert thread["patient_display"] == "Julie MARTIN"
    assert thread["title"] == "Suivi post-opératoire"
    assert (thread["priority"], thread["status"], thread["last_seq"]) == ("urgent", "open", 0)
    assert (thread["unread"], thread["access"]) == (0, "participant")
    tid = thread["id"]
    read = ward.call("GET", "pharma", f"/api/v1/threads/{tid}")
    assert read.status_code == 200
    assert read.json()["title"] == thread["title"]
    listed = ward.call("GET", "nurse", f"/api/v1/groups/{ward.gid}/threads")
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()["items"]] == [tid]
    assert listed.json()["next_cursor"] is None
    participants = ward.call("GET", "doc", f"/api/v1/threads/{tid}/participants")
    ids = {p["user_id"] for p in participants.json()["items"]}
    assert ids == {str(ward.users[n]) for n in ("doc", "nurse", "pharma")}
    # The title is not in clear in the database.
    with ward.world.database.session() as session:
        stored = session.execute(text("SELECT title FROM thread")).scalar_one()
    assert b"post-op" not in bytes(stored)


def test_only_participants_see_a_thread(ward: Ward) -> None:
    tid = ward.open(participants=("nurse",))["id"]
    ward.post("doc", tid, "Tension 14/9 ce matin")
    for who, status in (
        ("nurse", 200),
        ("pharma", 403),  # a clinician of the group, not a participant
        ("coord", 403),  # the coordinator sees no content unless a participant
        ("auditor", 403),
        ("outsider", 404),  # another group: as if it did not exist
    ):
        assert ward.call("GET", who, f"/api/v1/threads/{tid}").status_code == status, who
        assert ward.messages(who, tid).status_code == status, who
    listed = ward.call("GET", "pharma", f"/api/v1/groups/{ward.gid}/threads")
    assert listed.json()["items"] == []
    assert ward.call("GET", "auditor", f"/api/v1/groups/{ward.gid}/threads").status_code == 403
    assert ward.call("GET", "outsider", f"/api/v1/groups/{ward.gid}/threads").status_code == 404
    # The coordinator manages the circle of care without reading it.
    members = ward.call("GET", "coord", f"/api/v1/threads/{tid}/participants")
    assert members.status_code == 200
    unknown = ward.call("GET", "doc", f"/api/v1/threads/{uuid.uuid4()}")
    assert unknown.status_code == 404


def test_list_unread_counts_filters_and_cursor(ward: Ward) -> None:
    first = ward.open(title="Premier")["id"]
    second = ward.open(title="Second", priority="urgent")["id"]
    external = ward.open(title="Externe", patient=EXTERNAL)["id"]
    for body in ("un", "deux", "trois"):
        assert ward.post("doc", first, body).status_code == 201
    assert ward.post("nurse", first, "vu").status_code == 201
    url = f"/api/v1/groups/{ward.gid}/threads"
    mine = {t["id"]: t for t in ward.call("GET", "nurse", url).json()["items"]}
    assert (mine[first]["unread"], mine[second]["unread"], mine[external]["unread"]) == (3, 0, 0)
    # Most recent activity first.
    order = [t["id"] for t in ward.call("GET", "nurse", url).json()["items"]]
    assert order[0] == first
    # My own messages are never unread; the others' are until I read them.
    doc = {t["id"]: t for t in ward.call("GET", "doc", url).json()["items"]}
    assert doc[first]["unread"] == 1
    unread = ward.call("GET", "nurse", url, params={"unread": "true"}).json()["items"]
    assert [t["id"] for t in unread] == [first]
    read = ward.call("POST", "nurse", f"/api/v1/threads/{first}/read", json={"seq": 2})
    assert read.status_code == 200, read.text
    assert read.json() == {"thread_id": first, "read_seq": 2, "last_seq": 4, "unread": 1}
    # The position never moves back.
    back = ward.call("POST", "nurse", f"/api/v1/threads/{first}/read", json={"seq": 1})
    assert back.json()["read_seq"] == 2
    beyond = ward.call("POST", "nurse", f"/api/v1/threads/{first}/read", json={"seq": 5})
    assert beyond.status_code == 422
    assert beyond.json()["type"].endswith("beyond-last-message")
    by_patient = ward.call("GET", "nurse", url, params={"patient": EXTERNAL}).json()["items"]
    assert [t["id"] for t in by_patient] == [external]
    assert by_patient[0]["patient"] == EXTERNAL
    assert by_patient[0]["patient_display"] is None
    local = ward.call("GET", "nurse", url, params={"patient": f"Patient/{ward.pid}"})
    assert {t["id"] for t in local.json()["items"]} == {first, second}
    page = ward.call("GET", "nurse", url, params={"limit": 2}).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    rest = ward.call("GET", "nurse", url, params={"limit": 2, "cursor": page["next_cursor"]})
    seen = [t["id"] for t in page["items"]] + [t["id"] for t in rest.json()["items"]]
    assert sorted(seen) == sorted([first, second, external])
    assert rest.json()["next_cursor"] is None
    bad = ward.call("GET", "nurse", url, params={"cursor": "nope"})
    assert bad.status_code == 400


def test_update_status_title_and_priority(ward: Ward) -> None:
    tid = ward.open()["id"]
    url = f"/api/v1/threads/{tid}"
    changed = ward.call(
        "PATCH", "nurse", url, json={"title": "Nouveau titre", "priority": "urgent"}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["title"], changed.json()["priority"]) == ("Nouveau titre", "urgent")
    closed = ward.call("PATCH", "doc", url, json={"status": "closed"})
    assert closed.json()["status"] == "closed"
    # A closed thread takes no new content, and lists only when asked for.
    refused = ward.post("doc", tid, "encore un mot")
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("forbidden-thread-not-open")
    listing = f"/api/v1/groups/{ward.gid}/threads"
    assert [t["id"] for t in ward.call("GET", "doc", listing).json()["items"]] == [tid]
    ward.call("PATCH", "doc", url, json={"status": "archived"})
    assert ward.call("GET", "doc", listing).json()["items"] == []
    archived = ward.call("GET", "doc", listing, params={"status": "archived"}).json()["items"]
    assert [t["id"] for t in archived] == [tid]
    reopened = ward.call("PATCH", "doc", url, json={"status": "open"})
    assert reopened.json()["status"] == "open"
    assert ward.post("doc", tid, "on reprend").status_code == 201
    for body in ({"title": ""}, {"title": None}, {"title": "x" * 201}):
        bad = ward.call("PATCH", "doc", url, json=body)
        assert bad.status_code == 422, body
    assert ward.call("PATCH", "pharma", url, json={"priority": "routine"}).status_code == 403


def test_bad_thread_input_is_refused_audited_and_stores_nothing(ward: Ward) -> None:
    url = f"/api/v1/groups/{ward.gid}/threads"
    cases = [
        ({"patient": "Patient/not-a-uuid", "title": "t"}, "invalid-patient"),
        ({"patient": "ftp://example.org/Patient/1", "title": "t"}, "invalid-patient"),
        ({"patient": "https://example.org/Observation/1", "title": "t"}, "invalid-patient"),
        ({"patient": f"Patient/{uuid.uuid4()}", "title": "t"}, "unknown-patient"),
        ({"patient": f"Patient/{ward.pid}", "title": "   "}, "empty-title"),
        ({"patient": f"Patient/{ward.pid}", "title": "x" * 201}, "title-too-long"),
        (
            {
                "patient": f"Patient/{ward.pid}",
                "title": "t",
                "participants": [str(ward.users["auditor"])],
            },
            "invalid-participants",
        ),
        (
            {
                "patient": f"Patient/{ward.pid}",
                "title": "t",
                "participants": [str(ward.users["outsider"])],
            },
            "invalid-participants",
        ),
    ]
    for body, code in cases:
        before = ward.world.audit_count()
        response = ward.call("POST", "doc", url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["type"].endswith(code), response.text
        assert ward.world.audit_count() == before + 1
        assert ward.world.audit_tail()[0]["outcome"] == 8
    assert ward.count("thread") == 0
    assert ward.count("thread_participant") == 0
    # The auditor may not open threads; neither may a clinician of another group.
    assert ward.open("auditor", expect=403)["type"].endswith("forbidden-role")
    ward.open("outsider", participants=(), expect=404)
    assert ward.count("thread") == 0


def test_participants_join_leave_and_history(ward: Ward) -> None:
    tid = ward.open(participants=("nurse",))["id"]
    for body in ("avant 1", "avant 2"):
        ward.post("doc", tid, body)
    members = f"/api/v1/threads/{tid}/participants"
    # A newcomer sees the history by default...
    added = ward.call("POST", "nurse", members, json={"user_id": str(ward.users["pharma"])})
    assert added.status_code == 201, added.text
    assert added.json()["shares_history"] is True
    assert [m["body"] for m in ward.messages("pharma", tid).json()["items"]] == [
        "avant 1",
        "avant 2",
    ]
    # ...or only what follows, when asked.
    physio = {"user_id": str(ward.users["physio"]), "share_history": False}
    assert ward.call("POST", "coord", members, json=physio).status_code == 201
    ward.post("doc", tid, "après")
    seen = ward.messages("physio", tid).json()["items"]
    assert [(m["seq"], m["body"]) for m in seen] == [(3, "après")]
    physio_view = ward.call("GET", "physio", f"/api/v1/threads/{tid}").json()
    assert physio_view["unread"] == 1
    again = ward.call("POST", "doc", members, json={"user_id": str(ward.users["pharma"])})
    assert again.status_code == 409
    for user in ("auditor", "outsider"):
        bad = ward.call("POST", "doc", members, json={"user_id": str(ward.users[user])})
        assert bad.status_code == 422, user
    # A removed participant loses access at their next request.
    gone = ward.call("DELETE", "doc", f"{members}/{ward.users['pharma']}")
    assert gone.status_code == 204
    assert ward.messages("pharma", tid).status_code == 403
    assert ward.post("pharma", tid, "je suis encore là ?").status_code == 403
    listed = ward.call("GET", "pharma", f"/api/v1/groups/{ward.gid}/threads")
    assert listed.json()["items"] == []
    assert ward.call("DELETE", "doc", f"{members}/{ward.users['pharma']}").status_code == 404
    # A non-participant clinician can neither add nor remove; a coordinator can.
    pharma = {"user_id": str(ward.users["pharma"])}
    assert ward.call("POST", "pharma", members, json=pharma).status_code == 403
    assert ward.call("POST", "coord", members, json=pharma).status_code == 201
    assert ward.call("DELETE", "coord", f"{members}/{ward.users['nurse']}").status_code == 204
    assert ward.messages("nurse", tid).status_code == 403


def test_an_opposition_blocks_new_threads_and_hides_existing_ones(ward: Ward) -> None:
    tid = ward.open(participants=("nurse", "pharma"))["id"]
    ward.post("doc", tid, "avant l'opposition")
    oppositions = f"/api/v1/groups/{ward.gid}/patients/{ward.pid}/oppositions"
    informed = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    named = {
        "scope": "professionals",
        "professionals": [str(ward.users["pharma"])],
        "informed_at": informed,
    }
    recorded = ward.call("POST", "doc", oppositions, json=named)
    assert recorded.status_code == 201, recorded.text
    # The named professional loses the thread; the others keep it.
    assert ward.messages("pharma", tid).status_code == 403
    assert ward.messages("nurse", tid).status_code == 200
    pharma_list = ward.call("GET", "pharma", f"/api/v1/groups/{ward.gid}/threads").json()
    assert pharma_list["items"] == []
    assert ward.open("pharma", participants=(), expect=403)["type"].endswith("forbidden-opposition")
    assert ward.open("doc", participants=())["id"]
    whole = {"scope": "group", "informed_at": informed}
    assert ward.call("POST", "doc", oppositions, json=whole).status_code == 201
    before = ward.count("thread")
    ward.open("doc", participants=(), expect=403)
    assert ward.count("thread") == before
    assert ward.messages("doc", tid).status_code == 403
    assert ward.post("doc", tid, "après").status_code == 403
    nurse_list = ward.call("GET", "nurse", f"/api/v1/groups/{ward.gid}/threads").json()
    assert nurse_list["items"] == []
    # Threads about an external patient are not covered by the local patient's opposition.
    external = ward.open("doc", participants=(), patient=EXTERNAL)
    assert ward.post("doc", external["id"], "ok").status_code == 201
