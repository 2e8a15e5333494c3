"""Communication over FHIR: the messages of case threads, read, searched and posted through the
threads service (the policy and the audit entries of /api/v1/threads/{tid}/messages)."""

from __future__ import annotations

import copy
import json
from functools import partial
from typing import Any

import pytest
from fhir.resources.R4B.communication import Communication

from tests.fhir_api.conftest import Ward, audited_once, fhir_call, result_refs
from tests.fhir_api.test_careteam import ids, pages
from tests.fhir_api.test_resources import ok, refused

CLIENT_ID = "urn:hdsapp:message-client-id"
PDF = b"%PDF-1.7\ncompte rendu\n%%EOF\n"


def message(
    tid: str, text: str = "TA 13/8, on continue.", client_id: str | None = None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "status": "completed",
        "about": [{"reference": f"CareTeam/{tid}"}],
        "payload": [{"contentString": text}],
    }
    if client_id is not None:
        resource["identifier"] = [{"system": CLIENT_ID, "value": client_id}]
    return resource


def join_without_history(ward: Ward, tid: str, who: str) -> None:
    response = ward.call(
        "POST",
        "doc",
        f"/api/v1/threads/{tid}/participants",
        json={"user_id": str(ward.users[who]), "share_history": False},
    )
    assert response.status_code == 201, response.text


def test_a_message_is_a_communication(ward: Ward) -> None:
    tid = ward.open("doc", participants=("nurse",))["id"]
    posted = ward.post("nurse", tid, "Pansement refait ce matin.").json()
    response, entry = audited_once(
        ward, lambda: fhir_call(ward, "doc", "GET", f"Communication/{posted['id']}")
    )
    communication = ok(response)
    Communication.model_validate(communication)
    assert communication["id"] == posted["id"]
    assert communication["status"] == "completed"
    assert communication["about"] == [{"reference": f"CareTeam/{tid}"}]
    assert communication["subject"] == {"reference": f"Patient/{ward.pid}"}
    assert communication["sender"]["reference"] == f"Practitioner/{ward.users['nurse']}"
    assert communication["payload"] == [{"contentString": "Pansement refait ce matin."}]
    assert communication["identifier"] == [{"system": CLIENT_ID, "value": posted["client_id"]}]
    assert entry["kind"] == "read"
    assert result_refs(json.loads(entry["event"])) == [f"Communication/{posted['id']}"]


def test_attachments_are_links_to_their_download(ward: Ward) -> None:
    tid = ward.open("doc", participants=())["id"]
    response = ward.call(
        "POST",
        "doc",
        f"/api/v1/threads/{tid}/attachments",
        data={"document_type": "report", "body": "Le compte rendu"},
        files={"file": ("cr.pdf", PDF, "application/pdf")},
    )
    assert response.status_code == 201, response.text
    posted = response.json()
    communication = ok(fhir_call(ward, "doc", "GET", f"Communication/{posted['id']}"))
    Communication.model_validate(communication)
    text, document = communication["payload"]
    assert text == {"contentString": "Le compte rendu"}
    attachment = document["contentAttachment"]
    aid = posted["attachment"]["id"]
    assert attachment["url"] == f"https://testserver/api/v1/attachments/{aid}"
    assert (attachment["contentType"], attachment["size"], attachment["title"]) == (
        "application/pdf",
        len(PDF),
        "cr.pdf",
    )
    download = ward.call("GET", "doc", attachment["url"].removeprefix("https://testserver"))
    assert download.content == PDF


def test_search_by_thread_and_by_patient(ward: Ward) -> None:
    first = ward.open("doc", participants=("nurse",))["id"]
    second = ward.open("doc", participants=())["id"]
    other_patient = ward.open("doc", participants=(), patient=f"Patient/{ward.register_patient()}")
    a = ward.post("doc", first, "un").json()["id"]
    b = ward.post("nurse", first, "deux").json()["id"]
    c = ward.post("doc", second, "trois").json()["id"]
    d = ward.post("doc", other_patient["id"], "ailleurs").json()["id"]
    response, entry = audited_once(
        ward, lambda: fhir_call(ward, "doc", "GET", f"Communication?thread=CareTeam/{first}")
    )
    assert ids(ok(response)) == [a, b]
    assert entry["kind"] == "search"
    response, entry = audited_once(
        ward, lambda: fhir_call(ward, "doc", "GET", f"Communication?patient=Patient/{ward.pid}")
    )
    assert ids(ok(response)) == [a, b, c]
    assert result_refs(json.loads(entry["event"])) == [f"Communication/{m}" for m in (a, b, c)]
    # The nurse reads only the thread she takes part in.
    assert ids(ok(fhir_call(ward, "nurse", "GET", f"Communication?patient={ward.pid}"))) == [a, b]
    page = ok(fhir_call(ward, "doc", "GET", f"Communication?patient={ward.pid}&_count=2"))
    assert ids(page) == [a, b]
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    assert ids(ok(ward.call("GET", "doc", following.removeprefix("https://testserver")))) == [c]
    page = ok(fhir_call(ward, "doc", "GET", f"Communication?thread={first}&_count=1"))
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    assert ids(ok(ward.call("GET", "doc", following.removeprefix("https://testserver")))) == [b]
    for query in ("thread=Group/1", f"thread={first}&patient={ward.pid}", "patient=Group/1"):
        refused(fhir_call(ward, "doc", "GET", f"Communication?{query}"), 400)
    # Without a parameter: every message of the group's threads the caller may read.
    assert ids(ok(fhir_call(ward, "doc", "GET", "Communication"))) == [a, b, c, d]
    assert ids(ok(fhir_call(ward, "nurse", "GET", "Communication"))) == [a, b]
    refused(fhir_call(ward, "pharma", "GET", f"Communication?thread={first}"), 403)
    assert ids(ok(fhir_call(ward, "pharma", "GET", f"Communication?patient={ward.pid}"))) == []
    refused(
        fhir_call(ward, "outsider", "GET", f"Communication?thread={first}", group=ward.gid_b), 404
    )
    refused(fhir_call(ward, "auditor", "GET", f"Communication?patient={ward.pid}"), 403)


def test_a_newcomer_without_the_history_does_not_read_it(ward: Ward) -> None:
    tid = ward.open("doc", participants=())["id"]
    before = ward.post("doc", tid, "avant").json()["id"]
    join_without_history(ward, tid, "physio")
    after = ward.post("doc", tid, "après").json()["id"]
    refused(fhir_call(ward, "physio", "GET", f"Communication/{before}"), 404)
    ok(fhir_call(ward, "physio", "GET", f"Communication/{after}"))
    assert ids(ok(fhir_call(ward, "physio", "GET", f"Communication?thread={tid}"))) == [after]
    assert ids(ok(fhir_call(ward, "physio", "GET", f"Communication?patient={ward.pid}"))) == [after]


def test_who_may_read_a_message(ward: Ward) -> None:
    tid = ward.open("doc", participants=())["id"]
    mid = ward.post("doc", tid).json()["id"]
    for who, status in (("pharma", 403), ("coord", 403), ("auditor", 403), ("outsider", 404)):
        response, _ = audited_once(
            ward, partial(fhir_call, ward, who, "GET", f"Communication/{mid}")
        )
        refused(response, status)
    refused(
        fhir_call(ward, "doc", "GET", "Communication/00000000-0000-4000-8000-000000000bad"), 404
    )
    refused(fhir_call(ward, "doc", "PUT", f"Communication/{mid}", resource=message(tid)), 405)


def test_posting_a_communication(ward: Ward) -> None:
    tid = ward.open("doc", participants=("nurse",))["id"]
    resource = message(tid, client_id="retry-1")
    response, entry = audited_once(
        ward, lambda: fhir_call(ward, "nurse", "POST", "Communication", resource=resource)
    )
    created = ok(response, 201)
    Communication.model_validate(created)
    assert response.headers["location"].endswith(f"/Communication/{created['id']}")
    assert entry["kind"] == "create"
    assert created["sender"]["reference"] == f"Practitioner/{ward.users['nurse']}"
    assert created["subject"] == {"reference": f"Patient/{ward.pid}"}
    listed = ward.messages("doc", tid).json()["items"]
    assert [(m["id"], m["body"]) for m in listed] == [(created["id"], "TA 13/8, on continue.")]
    # The same client id again: the same message, not a second one.
    again = ok(fhir_call(ward, "nurse", "POST", "Communication", resource=resource), 200)
    assert again["id"] == created["id"]
    assert len(ward.messages("doc", tid).json()["items"]) == 1
    refused(fhir_call(ward, "doc", "POST", "Communication", resource=resource), 409)
    # Without an identifier the server makes one: each post is a new message.
    first = ok(fhir_call(ward, "doc", "POST", "Communication", resource=message(tid)), 201)
    second = ok(fhir_call(ward, "doc", "POST", "Communication", resource=message(tid)), 201)
    assert first["id"] != second["id"]
    correction = message(tid, "TA 12/8, pardon.")
    correction["extension"] = [
        {
            "url": "urn:hdsapp:StructureDefinition/message-corrects",
            "valueReference": {"reference": f"Communication/{first['id']}"},
        }
    ]
    corrected = ok(fhir_call(ward, "doc", "POST", "Communication", resource=correction), 201)
    assert corrected["extension"] == correction["extension"]


def test_who_may_post(ward: Ward) -> None:
    tid = ward.open("doc", participants=())["id"]
    for who, status in (("pharma", 403), ("coord", 403), ("outsider", 404)):
        refused(fhir_call(ward, who, "POST", "Communication", resource=message(tid)), status)
    ward.call("PATCH", "doc", f"/api/v1/threads/{tid}", json={"status": "closed"})
    refused(fhir_call(ward, "doc", "POST", "Communication", resource=message(tid)), 403)
    missing = message("00000000-0000-4000-8000-000000000bad")
    refused(fhir_call(ward, "doc", "POST", "Communication", resource=missing), 404)
    assert ward.messages("doc", tid).json()["items"] == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda c: c.update(status="in-progress"), "Communication.status"),
        (lambda c: c.pop("about"), "Communication.about"),
        (lambda c: c.update(about=[{"reference": "Patient/1"}]), "Communication.about"),
        (lambda c: c.update(payload=[]), "Communication.payload"),
        (
            lambda c: c["payload"].append({"contentAttachment": {"url": "https://x/y.pdf"}}),
            "Communication.payload[1]",
        ),
        (
            lambda c: c["payload"][0].update(contentString="  "),
            "Communication.payload[0].contentString",
        ),
        (
            lambda c: c["payload"][0].update(contentString="x" * 20_001),
            "Communication.payload[0].contentString",
        ),
        (
            lambda c: c.update(
                identifier=[{"system": CLIENT_ID, "value": "spaces are not allowed"}]
            ),
            "Communication.identifier",
        ),
        (lambda c: c.update(status=True), "Communication.status"),
        (lambda c: c.update(sent="yesterday"), "Communication.sent"),
        (
            lambda c: c.update(
                extension=[
                    {
                        "url": "urn:hdsapp:StructureDefinition/message-corrects",
                        "valueReference": {
                            "reference": "Communication/00000000-0000-4000-8000-000000000bad"
                        },
                    }
                ]
            ),
            "Communication.extension",
        ),
    ],
)
def test_communications_that_are_not_messages_are_422(ward: Ward, change: Any, path: str) -> None:
    tid = ward.open("doc", participants=())["id"]
    resource = copy.deepcopy(message(tid))
    change(resource)
    body = refused(fhir_call(ward, "doc", "POST", "Communication", resource=resource), 422)
    assert path in [e for issue in body["issue"] for e in issue.get("expression", [])], body
    assert ward.messages("doc", tid).json()["items"] == []


def test_total_counts_the_readable_messages_across_pages(ward: Ward) -> None:
    first = ward.open("doc", participants=("nurse",))["id"]
    second = ward.open("doc", participants=())["id"]
    hidden = ward.open("pharma", participants=())["id"]
    elsewhere = ward.open("doc", participants=(), patient=f"Patient/{ward.register_patient()}")
    for index in range(3):
        ward.post("doc", first, f"premier {index}")
        ward.post("doc", second, f"second {index}")
        ward.post("pharma", hidden, f"caché {index}")
    ward.post("doc", elsewhere["id"], "ailleurs")
    found = pages(ward, "doc", f"Communication?patient={ward.pid}&_count=4")
    assert [page["total"] for page in found] == [6, 6]
    found = pages(ward, "doc", f"Communication?thread=CareTeam/{first}&_count=2")
    assert [page["total"] for page in found] == [3, 3]
    # The nurse reads only the thread she takes part in, the pharmacist only theirs.
    assert pages(ward, "nurse", f"Communication?patient={ward.pid}&_count=2")[0]["total"] == 3
    assert pages(ward, "pharma", f"Communication?patient={ward.pid}&_count=2")[0]["total"] == 3
    # A newcomer without the history counts only what followed.
    join_without_history(ward, first, "physio")
    ward.post("doc", first, "après")
    for query in (f"thread={first}", f"patient={ward.pid}"):
        assert pages(ward, "physio", f"Communication?{query}&_count=1")[0]["total"] == 1
    assert pages(ward, "doc", f"Communication?thread={first}&_count=3")[0]["total"] == 4


def test_search_by_id(ward: Ward) -> None:
    tid = ward.open("doc", participants=())["id"]
    hidden = ward.open("pharma", participants=())["id"]
    elsewhere = ward.open("doc", participants=(), patient=f"Patient/{ward.register_patient()}")
    mine = ward.post("doc", tid, "un").json()["id"]
    other = ward.post("doc", elsewhere["id"], "ailleurs").json()["id"]
    theirs = ward.post("pharma", hidden, "caché").json()["id"]
    response, entry = audited_once(
        ward, lambda: fhir_call(ward, "doc", "GET", f"Communication?_id={mine}")
    )
    bundle = ok(response)
    assert (ids(bundle), bundle["total"]) == ([mine], 1)
    assert bundle["entry"][0]["resource"] == ok(
        fhir_call(ward, "doc", "GET", f"Communication/{mine}")
    )
    assert entry["kind"] == "search"
    assert result_refs(json.loads(entry["event"])) == [f"Communication/{mine}"]
    assert pages(ward, "doc", f"Communication?_id={mine}&patient={ward.pid}")[0]["total"] == 1
    assert pages(ward, "doc", f"Communication?_id={other}&patient={ward.pid}")[0]["total"] == 0
    # A message the caller may not read, or a malformed id, matches nothing.
    for value in (theirs, "nope"):
        assert pages(ward, "doc", f"Communication?_id={value}")[0]["total"] == 0
    assert pages(ward, "pharma", f"Communication?_id={theirs}")[0]["total"] == 1
    refused(fhir_call(ward, "doc", "GET", f"Communication?_id={mine}&thread={tid}"), 400)
    refused(fhir_call(ward, "auditor", "GET", f"Communication?_id={mine}"), 403)
