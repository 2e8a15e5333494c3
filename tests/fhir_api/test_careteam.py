"""CareTeam over FHIR: a case thread and its circle of care, through the threads service (the
policy and the audit entry of GET /api/v1/threads/{tid} and of the group's thread list)."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careteam import CareTeam

from tests.fhir_api.conftest import Ward, audited_once, fhir_call, result_refs
from tests.fhir_api.test_resources import ok, refused

EXTERNAL = "https://fhir.chu-exemple.fr/fhir/Patient/12345"


def ids(bundle: dict[str, Any]) -> list[str]:
    Bundle.model_validate(bundle)
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def test_a_thread_is_a_care_team(ward: Ward) -> None:
    thread = ward.open("doc", participants=("nurse",), title="Plaie du pied droit")
    tid = thread["id"]
    response, entry = audited_once(ward, lambda: fhir_call(ward, "doc", "GET", f"CareTeam/{tid}"))
    team = ok(response)
    CareTeam.model_validate(team)
    assert team["id"] == tid
    assert team["name"] == "Plaie du pied droit"
    assert team["status"] == "active"
    assert team["subject"]["reference"] == f"Patient/{ward.pid}"
    assert team["subject"]["display"]
    assert team["managingOrganization"] == [{"reference": f"Organization/{ward.gid}"}]
    members = {p["member"]["reference"] for p in team["participant"]}
    assert members == {f"Practitioner/{ward.users[who]}" for who in ("doc", "nurse")}
    assert {"system": "urn:hdsapp:CodeSystem/thread-status", "code": "open"} in team["meta"]["tag"]
    assert response.headers["last-modified"]
    # The same entry as the /api read: one read of the thread, about the patient.
    assert entry["kind"] == "read"
    assert str(entry["patient_id"]).replace("-", "") == ward.pid.replace("-", "")
    assert result_refs(json.loads(entry["event"])) == [f"CareTeam/{tid}"]
    _, api_entry = audited_once(ward, lambda: ward.call("GET", "doc", f"/api/v1/threads/{tid}"))
    assert (api_entry["kind"], api_entry["action"]) == (entry["kind"], entry["action"])


def test_status_mapping_and_external_patients(ward: Ward) -> None:
    external = ward.open("doc", patient=EXTERNAL, participants=())
    closed = ward.open("doc", participants=())
    archived = ward.open("doc", participants=())
    for thread, status in ((closed, "closed"), (archived, "archived")):
        response = ward.call(
            "PATCH", "doc", f"/api/v1/threads/{thread['id']}", json={"status": status}
        )
        assert response.status_code == 200, response.text
    team = ok(fhir_call(ward, "doc", "GET", f"CareTeam/{external['id']}"))
    assert team["subject"] == {"reference": EXTERNAL}
    for thread, status in ((closed, "closed"), (archived, "archived")):
        team = ok(fhir_call(ward, "doc", "GET", f"CareTeam/{thread['id']}"))
        assert team["status"] == "inactive"
        assert team["meta"]["tag"][0]["code"] == status
    found = ok(fhir_call(ward, "doc", "GET", f"CareTeam?patient=Patient/{ward.pid}"))
    assert set(ids(found)) == {closed["id"], archived["id"]}  # archived threads included
    found = ok(fhir_call(ward, "doc", "GET", f"CareTeam?patient={EXTERNAL}"))
    assert ids(found) == [external["id"]]


def test_who_may_read_a_care_team(ward: Ward) -> None:
    tid = ward.open("doc", participants=("nurse",))["id"]
    ok(fhir_call(ward, "nurse", "GET", f"CareTeam/{tid}"))
    # Not a participant: refused as the policy says (403), and recorded.
    for who in ("pharma", "coord", "auditor"):
        response, entry = audited_once(
            ward, partial(fhir_call, ward, who, "GET", f"CareTeam/{tid}")
        )
        refused(response, 403)
        assert entry["outcome"] != 0
    # Another group's member, or an unknown id: not found, the same way.
    refused(fhir_call(ward, "outsider", "GET", f"CareTeam/{tid}", group=ward.gid_b), 404)
    refused(fhir_call(ward, "outsider", "GET", f"CareTeam/{tid}"), 404)
    refused(fhir_call(ward, "doc", "GET", "CareTeam/00000000-0000-4000-8000-000000000bad"), 404)
    refused(fhir_call(ward, "doc", "GET", "CareTeam/not-an-id"), 404)
    refused(fhir_call(ward, "doc", "POST", "CareTeam", resource={"resourceType": "CareTeam"}), 405)


def test_search_shows_only_readable_threads_and_is_audited(ward: Ward) -> None:
    mine = ward.open("doc", participants=("nurse",))["id"]
    theirs = ward.open("pharma", participants=())["id"]
    response, entry = audited_once(
        ward, lambda: fhir_call(ward, "doc", "GET", f"CareTeam?patient={ward.pid}")
    )
    bundle = ok(response)
    assert ids(bundle) == [mine]
    assert entry["kind"] == "search"
    assert result_refs(json.loads(entry["event"])) == [f"CareTeam/{mine}"]
    assert ids(ok(fhir_call(ward, "pharma", "GET", "CareTeam"))) == [theirs]
    assert ids(ok(fhir_call(ward, "doc", "GET", f"CareTeam?_id={mine}"))) == [mine]
    assert ids(ok(fhir_call(ward, "doc", "GET", f"CareTeam?_id={theirs}"))) == []
    assert ids(ok(fhir_call(ward, "doc", "GET", "CareTeam?_id=nope"))) == []
    team = bundle["entry"][0]["resource"]
    assert team == ok(fhir_call(ward, "doc", "GET", f"CareTeam/{mine}"))
    # Paging.
    second = ward.open("doc", participants=())["id"]
    page = ok(fhir_call(ward, "doc", "GET", "CareTeam?_count=1"))
    assert ids(page) == [second]
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = ward.call("GET", "doc", following.removeprefix("https://testserver"))
    assert ids(ok(rest)) == [mine]
    for query in ("patient=Group/1", "patient=ftp://x/Patient/1", "status=active"):
        refused(fhir_call(ward, "doc", "GET", f"CareTeam?{query}"), 400)
    refused(fhir_call(ward, "auditor", "GET", "CareTeam"), 403)
    refused(fhir_call(ward, "outsider", "GET", "CareTeam"), 404)


def pages(ward: Ward, who: str, query: str) -> list[dict[str, Any]]:
    """Every page of a search, following ``next`` links; each page's ``total`` is checked to be
    the same, and to equal the number of resources collected."""
    found = [ok(fhir_call(ward, who, "GET", query))]
    while following := [link["url"] for link in found[-1]["link"] if link["relation"] == "next"]:
        found.append(ok(ward.call("GET", who, following[0].removeprefix("https://testserver"))))
    collected = [i for page in found for i in ids(page)]
    assert len(set(collected)) == len(collected), query
    assert {page["total"] for page in found} == {len(collected)}, query
    return found


def test_total_counts_the_readable_threads_across_pages(ward: Ward) -> None:
    mine = [ward.open("doc", participants=("nurse",))["id"] for _ in range(3)]
    mine.append(ward.open("doc", participants=(), patient=EXTERNAL)["id"])
    hidden = [ward.open("pharma", participants=())["id"] for _ in range(2)]
    found = pages(ward, "doc", "CareTeam?_count=2")
    assert len(found) == 2
    assert found[0]["total"] == len(mine)
    assert sorted(i for page in found for i in ids(page)) == sorted(mine)
    found = pages(ward, "doc", f"CareTeam?patient={ward.pid}&_count=1")
    assert [page["total"] for page in found] == [3, 3, 3]
    # The nurse takes part in three of them; the pharmacist sees only their own.
    assert pages(ward, "nurse", "CareTeam?_count=2")[0]["total"] == 3
    assert pages(ward, "pharma", "CareTeam?_count=1")[0]["total"] == len(hidden)
    # An id the caller may not read is not counted; an empty search says 0.
    assert pages(ward, "doc", f"CareTeam?_id={hidden[0]}")[0]["total"] == 0
    assert pages(ward, "doc", f"CareTeam?_id={mine[0]}")[0]["total"] == 1
    assert pages(ward, "physio", "CareTeam")[0]["total"] == 0
