"""Patient over FHIR: create (and conditional create), read, update with If-Match, search, the
wire rules (media types, Prefer, ETag, Location), OperationOutcomes, and one audit entry per
request with the search's results in it."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from tests.fhir_api.conftest import FHIR_JSON, Clinic, example, result_refs
from tests.patients.data import fr_patient, new_ins

INS_TEST = "urn:oid:1.2.250.1.213.1.4.10"


def without_server_parts(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in {"id", "meta"}}


def outcome(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body: dict[str, Any] = response.json()
    OperationOutcome.model_validate(body)
    return body


def create(clinic: Clinic, resource: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = clinic.fhir("POST", "Patient", resource=resource, **kwargs)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_create_then_read_round_trips(clinic: Clinic) -> None:
    sent = example("Patient-ins-qualified.json")
    response = clinic.fhir("POST", "Patient", resource=sent)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == f"{FHIR_JSON}; charset=utf-8"
    created = response.json()
    pid = created["id"]
    assert created["id"] != sent["id"]
    assert created["meta"]["versionId"] == "1"
    assert created["meta"]["profile"] == sent["meta"]["profile"]
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"].endswith(f"{clinic.base}/Patient/{pid}/_history/1")
    assert response.headers["location"].startswith("https://testserver/")
    assert "last-modified" in response.headers
    assert without_server_parts(created) == without_server_parts(sent)
    read = clinic.fhir("GET", f"Patient/{pid}")
    assert read.status_code == 200
    assert read.headers["etag"] == 'W/"1"'
    assert read.json() == created
    # Unicode is sent as is, not escaped.
    assert "Lefèvre-D'Arc".encode() in read.content


def test_plain_json_and_format_are_accepted(clinic: Clinic) -> None:
    response = clinic.fhir(
        "POST",
        "Patient?_format=json",
        resource=example("Patient-provisional.json"),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text
    pid = response.json()["id"]
    for query in ("_format=json", "_format=application/fhir%2Bjson", "_pretty=true"):
        assert clinic.fhir("GET", f"Patient/{pid}?{query}").status_code == 200
    pretty = clinic.fhir("GET", f"Patient/{pid}?_pretty=true")
    assert b"\n  " in pretty.content


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/fhir+xml"}, 415),
        ({"Content-Type": "application/fhir+json; charset=latin-1"}, 415),
        ({"Content-Type": FHIR_JSON, "Accept": "application/fhir+xml"}, 406),
    ],
)
def test_media_types(clinic: Clinic, headers: dict[str, str], status: int) -> None:
    before = clinic.patients_stored()
    response = clinic.fhir(
        "POST", "Patient", resource=example("Patient-provisional.json"), headers=headers
    )
    outcome(response, status)
    assert clinic.patients_stored() == before


def test_missing_content_type_and_xml_format(clinic: Clinic) -> None:
    body = json.dumps(example("Patient-provisional.json")).encode()
    outcome(clinic.fhir("POST", "Patient", content=body), 415)
    outcome(clinic.fhir("GET", "Patient?_format=xml"), 406)
    assert clinic.patients_stored() == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "empty-body"),
        (b"{", "malformed-json"),
        (b'{"resourceType": "Patient",}', "malformed-json"),
        (b'{"resourceType": "Patient", /* no */ "active": true}', "malformed-json"),
        (b'{"resourceType": "Patient", "active": true, "active": false}', "malformed-json"),
        (b'{"resourceType": "Patient", "multipleBirthDecimal": NaN}', "malformed-json"),
        (b"[]", "not-a-resource"),
        (b"\xff\xfe", "malformed-json"),
    ],
)
def test_malformed_bodies_are_400(clinic: Clinic, body: bytes, code: str) -> None:
    response = clinic.fhir("POST", "Patient", content=body, headers={"Content-Type": FHIR_JSON})
    issue = outcome(response, 400)["issue"][0]
    assert issue["code"] == "structure"
    assert issue["details"]["coding"][0]["code"] == code
    assert clinic.patients_stored() == 0


def test_invalid_resource_is_422_with_paths(clinic: Clinic) -> None:
    sent = fr_patient()
    sent["active"] = "true"
    sent["name"][0]["given"] = ["Julie", 3]
    response = clinic.fhir("POST", "Patient", resource=sent)
    issues = outcome(response, 422)["issue"]
    paths = sorted(p for i in issues for p in i["expression"])
    assert paths == ["Patient.active", "Patient.name[0].given[1]"]
    assert all(i["severity"] == "error" for i in issues)
    # FR Core identity rules: an INS on a provisional identity.
    refused = clinic.fhir("POST", "Patient", resource=fr_patient(status="PROV", ins=new_ins()))
    assert outcome(refused, 422)["issue"][0]["expression"] == ["Patient.identifier"]
    wrong_type = clinic.fhir("POST", "Patient", resource={"resourceType": "Practitioner"})
    assert outcome(wrong_type, 422)["issue"][0]["expression"] == ["Patient.resourceType"]
    assert clinic.patients_stored() == 0


def test_prefer_return(clinic: Clinic) -> None:
    minimal = clinic.fhir(
        "POST",
        "Patient",
        resource=fr_patient(ins=new_ins()),
        headers={"Prefer": "return=minimal"},
    )
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert "/Patient/" in minimal.headers["location"]
    assert minimal.headers["etag"] == 'W/"1"'
    informed = clinic.fhir(
        "POST",
        "Patient",
        resource=fr_patient(ins=new_ins()),
        headers={"Prefer": "return=OperationOutcome"},
    )
    assert informed.status_code == 201
    assert outcome(informed, 201)["issue"][0]["severity"] == "information"


def test_conditional_create_does_not_create_a_second_record(clinic: Clinic) -> None:
    ins = new_ins()
    first = create(clinic, fr_patient(ins=ins))
    condition = {"If-None-Exist": f"identifier={INS_TEST}|{ins}"}
    again = clinic.fhir("POST", "Patient", resource=fr_patient(ins=ins), headers=condition)
    assert again.status_code == 200, again.text
    assert again.headers["location"].endswith(f"/Patient/{first['id']}")
    assert outcome(again, 200)["issue"][0]["code"] == "duplicate"
    assert clinic.patients_stored() == 1
    # Without the condition: a conflict, naming the existing record.
    conflict = clinic.fhir("POST", "Patient", resource=fr_patient(ins=ins))
    issues = outcome(conflict, 409)["issue"]
    assert issues[0]["code"] == "duplicate"
    assert issues[1]["diagnostics"] == f"existing resource: Patient/{first['id']}"
    # The first time, the condition is met: created.
    fresh = new_ins()
    created = clinic.fhir(
        "POST",
        "Patient",
        resource=fr_patient(ins=fresh),
        headers={"If-None-Exist": f"identifier={INS_TEST}%7C{fresh}"},
    )
    assert created.status_code == 201
    assert clinic.patients_stored() == 2


@pytest.mark.parametrize(
    "condition",
    ["family=Martin", "identifier=http://example.org|1", "identifier=OTHER", "%%%", ""],
)
def test_conditional_create_on_other_criteria_is_412(clinic: Clinic, condition: str) -> None:
    response = clinic.fhir(
        "POST",
        "Patient",
        resource=fr_patient(ins=new_ins()),
        headers={"If-None-Exist": condition},
    )
    outcome(response, 412)
    assert clinic.patients_stored() == 0


def test_update_with_if_match(clinic: Clinic) -> None:
    created = create(clinic, fr_patient(family="Martin", ins=new_ins()))
    pid = created["id"]
    changed = copy.deepcopy(created)
    changed["name"][0]["family"] = "Martin-Durand"
    changed["telecom"] = [{"system": "phone", "value": "+33 6 00 00 00 00"}]
    response = clinic.fhir("PUT", f"Patient/{pid}", resource=changed, headers={"If-Match": 'W/"1"'})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    updated = response.json()
    assert updated["meta"]["versionId"] == "2"
    assert without_server_parts(updated) == without_server_parts(changed)
    assert clinic.fhir("GET", f"Patient/{pid}").json() == updated
    # Stale version: 412, nothing changed.
    stale = clinic.fhir("PUT", f"Patient/{pid}", resource=created, headers={"If-Match": 'W/"1"'})
    issues = outcome(stale, 412)["issue"]
    assert issues[1]["diagnostics"] == "current version: 2"
    assert clinic.fhir("GET", f"Patient/{pid}").json()["meta"]["versionId"] == "2"
    # Without If-Match the update applies to the current version.
    assert clinic.fhir("PUT", f"Patient/{pid}", resource=created).json()["meta"] == {
        **updated["meta"],
        "versionId": "3",
        "lastUpdated": clinic.fhir("GET", f"Patient/{pid}").json()["meta"]["lastUpdated"],
    }
    # The search follows the new family name.
    found = clinic.fhir("GET", "Patient?family=martin-durand&birthdate=1979-03-15").json()
    assert found["total"] == 0
    found = clinic.fhir("GET", "Patient?family=MARTIN&birthdate=1979-03-15").json()
    assert [e["resource"]["id"] for e in found["entry"]] == [pid]


def test_update_errors(clinic: Clinic) -> None:
    created = create(clinic, fr_patient(ins=new_ins()))
    pid = created["id"]
    other = create(clinic, fr_patient(ins=new_ins()))
    mismatch = dict(created, id=other["id"])
    assert outcome(clinic.fhir("PUT", f"Patient/{pid}", resource=mismatch), 400)
    no_id = {k: v for k, v in created.items() if k != "id"}
    assert outcome(clinic.fhir("PUT", f"Patient/{pid}", resource=no_id), 400)
    bad_etag = clinic.fhir("PUT", f"Patient/{pid}", resource=created, headers={"If-Match": "1"})
    assert outcome(bad_etag, 400)["issue"][0]["details"]["coding"][0]["code"] == (
        "invalid-if-match"
    )
    # Taking another patient's INS: 409.
    taken = dict(created, identifier=other["identifier"])
    outcome(clinic.fhir("PUT", f"Patient/{pid}", resource=taken), 409)
    unknown = "00000000-0000-4000-8000-000000000bad"
    outcome(clinic.fhir("PUT", f"Patient/{unknown}", resource=dict(created, id=unknown)), 404)
    invalid = dict(created, gender="unknown-gender")
    issues = outcome(clinic.fhir("PUT", f"Patient/{pid}", resource=invalid), 422)["issue"]
    assert issues[0]["expression"] == ["Patient.gender"]
    assert clinic.fhir("GET", f"Patient/{pid}").json()["meta"]["versionId"] == "1"


def test_unknown_ids_types_and_methods(clinic: Clinic) -> None:
    outcome(clinic.fhir("GET", "Patient/00000000-0000-4000-8000-000000000bad"), 404)
    outcome(clinic.fhir("GET", "Patient/not-a-uuid"), 404)
    outcome(clinic.fhir("GET", "Observation"), 404)
    outcome(clinic.fhir("GET", "Patient/x/y/z"), 404)
    outcome(clinic.world.call("GET", "/fhir/not-a-group/Patient", clinic.token), 404)
    assert outcome(clinic.fhir("DELETE", "Patient/x"), 405)["issue"][0]["code"] == ("not-supported")
    outcome(clinic.fhir("PATCH", "Patient/x"), 405)
    outcome(clinic.world.call("GET", "/fhir/", clinic.token), 404)


def test_search(clinic: Clinic) -> None:
    qualified = create(clinic, example("Patient-ins-qualified.json"))
    provisional = create(clinic, example("Patient-provisional.json"))
    namesake = create(
        clinic,
        fr_patient(family="Lefevre d'Arc", given="Anne", birth_date="1984-07-21", ins=new_ins()),
    )
    ins = qualified["identifier"][0]["value"]

    def ids(query: str) -> list[str]:
        response = clinic.fhir("GET", f"Patient?{query}")
        assert response.status_code == 200, response.text
        bundle = response.json()
        Bundle.model_validate(bundle)
        assert bundle["type"] == "searchset"
        found = [e["resource"]["id"] for e in bundle.get("entry", [])]
        assert bundle["total"] == len(found)
        return found

    assert ids(f"identifier={INS_TEST}|{ins}") == [qualified["id"]]
    assert ids(f"identifier={ins}") == [qualified["id"]]
    assert ids(f"identifier={INS_TEST}|{new_ins()}") == []
    both = sorted([qualified["id"], namesake["id"]])
    assert sorted(ids("family=LEFEVRE-DARC&birthdate=1984-07-21")) == both
    assert sorted(ids("family:exact=lefèvre d\u2019arc&birthdate=eq1984-07-21")) == both
    assert ids("family=Lefèvre-D'Arc&birthdate=1984-07-21&given=elo") == [qualified["id"]]
    assert ids("family=Lefèvre-D'Arc&birthdate=1984-07-21&given=ANN") == [namesake["id"]]
    assert ids("family=N'Diaye&birthdate=1956-12-29") == [provisional["id"]]
    assert ids(f"_id={provisional['id']}") == [provisional["id"]]
    assert ids(f"_id={provisional['id']}&given=aissa") == [provisional["id"]]
    assert ids("_id=not-a-uuid") == []
    assert len(ids("")) == 3
    with_lenient = clinic.fhir(
        "GET", "Patient?unknown=1&_id=" + provisional["id"], headers={"Prefer": "handling=lenient"}
    )
    assert with_lenient.status_code == 200
    assert "unknown" not in with_lenient.json()["link"][0]["url"]


@pytest.mark.parametrize(
    "query",
    [
        "given=Julie",
        "family=Martin",
        "birthdate=1979-03-15",
        "family=Martin&birthdate=1979",
        "family=Martin&birthdate=gt1979-03-15",
        "identifier=http://example.org/mrn|12",
        "unknown=1",
        "family:contains=Mar&birthdate=1979-03-15",
        "_id=a&_id=b",
        "identifier=a,b",
        "_count=many",
        "_cursor=%21%21",
    ],
)
def test_searches_the_server_cannot_run_are_400(clinic: Clinic, query: str) -> None:
    outcome(clinic.fhir("GET", f"Patient?{query}"), 400)


def test_paging_with_count_and_next_links(clinic: Clinic) -> None:
    created = [create(clinic, fr_patient(ins=new_ins()))["id"] for _ in range(7)]
    seen: list[str] = []
    url = f"{clinic.base}/Patient?family=Martin&birthdate=1979-03-15&_count=3"
    pages = 0
    while url:
        response = clinic.world.call("GET", url, clinic.token)
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert bundle["total"] == 7
        seen.extend(e["resource"]["id"] for e in bundle["entry"])
        assert all(
            e["fullUrl"] == f"https://testserver{clinic.base}/Patient/{e['resource']['id']}"
            for e in bundle["entry"]
        )
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        pages += 1
        url = links.get("next", "")
        if url:
            query = parse_qs(urlsplit(url).query)
            assert query["_count"] == ["3"]
            assert query["family"] == ["Martin"]
            url = url.removeprefix("https://testserver")
    assert pages == 3
    assert seen == created
    capped = clinic.fhir("GET", "Patient?_count=1000").json()
    assert urlsplit(capped["link"][0]["url"]).query.endswith("_count=100")


def test_one_audit_entry_per_request_with_the_results(clinic: Clinic) -> None:
    world = clinic.world
    a = create(clinic, fr_patient(ins=new_ins()))
    b = create(clinic, fr_patient(ins=new_ins()))
    before = world.audit_count()
    response = clinic.fhir("GET", "Patient?family=Martin&birthdate=1979-03-15&_count=1")
    assert response.status_code == 200
    assert world.audit_count() == before + 1
    entry = world.audit_tail()[0]
    assert entry["kind"] == "search"
    event = json.loads(entry["event"])
    assert result_refs(event) == [f"Patient/{a['id']}"]
    query = next(e["query"] for e in event["entity"] if "query" in e)
    assert base64.b64decode(query).decode() == "Patient?family=*&birthdate=*"
    for method, path, kind in [
        ("GET", f"Patient/{b['id']}", "read"),
        ("GET", "Patient/00000000-0000-4000-8000-000000000bad", "read"),
        ("PUT", f"Patient/{b['id']}", "update"),
    ]:
        before = world.audit_count()
        clinic.fhir(method, path, resource=b if method == "PUT" else None)
        assert world.audit_count() == before + 1, (method, path)
        assert world.audit_tail()[0]["kind"] == kind
    # The capability statement is not an access to protected data.
    before = world.audit_count()
    assert clinic.fhir("GET", "metadata", token=None).status_code == 200
    assert world.audit_count() == before


def test_reads_and_searches_do_not_revalidate(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored JSON is served as stored: fhir.resources stays off the read path."""
    created = create(clinic, example("Patient-ins-qualified.json"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("validated on the read path")

    monkeypatch.setattr("hdsapp.patients.service.parse", refuse)
    monkeypatch.setattr("fhir_core.fhirabstractmodel.FHIRAbstractModel.model_validate", refuse)
    assert clinic.fhir("GET", f"Patient/{created['id']}").json() == created
    found = clinic.fhir("GET", f"Patient?_id={created['id']}").json()
    assert found["entry"][0]["resource"] == created
