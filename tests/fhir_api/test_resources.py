"""Organization, Practitioner, Consent and AuditEvent over FHIR: the group, its members, the
patients' oppositions and the audit log, through the same use cases as /api/v1."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner

from hdsapp.core.actor import Role, system_actor
from hdsapp.core.db import utcnow
from hdsapp.identity import service as identity
from tests.conftest import TESTDATA
from tests.fhir_api.conftest import FHIR_JSON, Clinic, example, load, result_refs
from tests.patients.data import fr_patient, new_ins

RPPS = "http://rpps.esante.gouv.fr"
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body: dict[str, Any] = response.json()
    return body


def refused(response: Any, status: int) -> dict[str, Any]:
    body = ok(response, status)
    assert body["resourceType"] == "OperationOutcome"
    return body


def entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    Bundle.model_validate(bundle)
    return [e["resource"] for e in bundle.get("entry", [])]


def new_patient(clinic: Clinic, **kwargs: Any) -> str:
    response = clinic.fhir("POST", "Patient", resource=fr_patient(ins=new_ins(), **kwargs))
    pid: str = ok(response, 201)["id"]
    return pid


# -- Organization ------------------------------------------------------------------------------


def test_organization_is_the_group(clinic: Clinic) -> None:
    for token in (clinic.token, clinic.coordinator_token, clinic.auditor_token):
        organization = ok(clinic.fhir("GET", f"Organization/{clinic.group}", token=token))
        Organization.model_validate(organization)
        assert organization["id"] == str(clinic.group)
        assert organization["name"] == "Maison de santé du Port"
        assert organization["active"] is True
    other = clinic.world.group("Another group", clinic.coordinator)
    refused(clinic.fhir("GET", f"Organization/{other}"), 404)
    refused(clinic.world.call("GET", f"/fhir/{other}/Organization/{other}", clinic.token), 404)
    refused(clinic.fhir("GET", f"Organization/{clinic.group}", token=None), 401)
    refused(clinic.fhir("GET", "Organization"), 405)


# -- Practitioner ------------------------------------------------------------------------------


def add_ans_practitioner(clinic: Clinic) -> tuple[str, dict[str, Any]]:
    """The national directory's Practitioner (RPPS 10000548254), as a member of the group."""
    directory = load(TESTDATA / "ans" / "Practitioner-003-148761-extracted.json")
    numbers = {i["type"]["coding"][0]["code"]: i["value"] for i in directory["identifier"]}
    with clinic.world.database.unit_of_work() as session:
        created = identity.create_user(
            session=session,
            actor=system_actor(),
            email="laurent.vabre@medecin.mssante.fr",
            display_name="Laurent Vabre",
            password=None,
            rpps=numbers["RPPS"],
            idnps=numbers["IDNPS"],
            profession="10",
            now=utcnow(),
        )
    user_id = created.user.id
    clinic.world.emails[user_id] = "laurent.vabre@medecin.mssante.fr"
    clinic.world.member(clinic.group, user_id, Role.CLINICIAN)
    return str(user_id), directory


def test_the_national_directory_practitioner_is_found_by_rpps_and_idnps(clinic: Clinic) -> None:
    user_id, directory = add_ans_practitioner(clinic)
    numbers = {i["type"]["coding"][0]["code"]: i["value"] for i in directory["identifier"]}
    queries = [
        f"identifier={RPPS}|{numbers['RPPS']}",
        f"identifier=http://rpps.fr|{numbers['RPPS']}",  # the directory's own system
        f"identifier={IDNPS}|{numbers['IDNPS']}",
        f"identifier={numbers['RPPS']}",
        f"identifier={numbers['IDNPS']}",
        "name=vab",
        "name=LAURENT",
        f"_id={user_id}&name=Vabre",
    ]
    for query in queries:
        found = entries(ok(clinic.fhir("GET", f"Practitioner?{query}")))
        assert [p["id"] for p in found] == [user_id], query
    practitioner = ok(clinic.fhir("GET", f"Practitioner/{user_id}"))
    Practitioner.model_validate(practitioner)
    ours = {(i["system"], i["value"]) for i in practitioner["identifier"]}
    assert ours == {(RPPS, numbers["RPPS"]), (IDNPS, numbers["IDNPS"])}
    assert practitioner["active"] is True
    assert practitioner["name"] == [{"text": "Laurent Vabre"}]
    for query in (
        "identifier=http://hl7.org/fhir/sid/us-npi|10000548254",
        f"identifier={RPPS}|19999999999",
        "name=zzz",
        "_id=not-a-uuid",
    ):
        bundle = ok(clinic.fhir("GET", f"Practitioner?{query}"))
        assert bundle["total"] == 0, query
    refused(clinic.fhir("GET", "Practitioner?name=%27-%27"), 400)


def test_practitioners_are_the_members(clinic: Clinic) -> None:
    everyone = ok(clinic.fhir("GET", "Practitioner"))
    assert everyone["total"] == 3
    assert {p["id"] for p in entries(everyone)} == {
        str(clinic.clinician),
        str(clinic.coordinator),
        str(clinic.auditor),
    }
    clinic.world.set_membership(clinic.group, clinic.auditor, status="removed")
    refused(clinic.fhir("GET", f"Practitioner/{clinic.auditor}"), 404)
    assert ok(clinic.fhir("GET", "Practitioner"))["total"] == 2
    clinic.world.set_membership(clinic.group, clinic.coordinator, status="suspended")
    suspended = ok(clinic.fhir("GET", f"Practitioner/{clinic.coordinator}"))
    assert suspended["active"] is False
    refused(clinic.fhir("GET", "Practitioner/00000000-0000-4000-8000-000000000bad"), 404)
    refused(clinic.fhir("POST", "Practitioner", resource={"resourceType": "Practitioner"}), 405)
    refused(clinic.fhir("GET", "Practitioner?family=x"), 400)


def test_practitioner_search_audits_its_results(clinic: Clinic) -> None:
    before = clinic.world.audit_count()
    found = entries(ok(clinic.fhir("GET", "Practitioner?name=clinician")))
    assert [p["id"] for p in found] == [str(clinic.clinician)]
    assert clinic.world.audit_count() == before + 1
    event = json.loads(clinic.world.audit_tail()[0]["event"])
    assert result_refs(event) == [f"Practitioner/{clinic.clinician}"]


# -- Consent -----------------------------------------------------------------------------------


def consent_for(patient_id: str, *, actors: list[str] | None = None) -> dict[str, Any]:
    consent = example("Consent-opposition.json")
    consent["patient"] = {"reference": f"Patient/{patient_id}"}
    informed = (utcnow() - dt.timedelta(hours=1)).isoformat()
    consent["extension"][0]["extension"][0]["valueDateTime"] = informed
    if actors:
        consent["provision"]["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                        }
                    ]
                },
                "reference": {"reference": f"Practitioner/{a}"},
            }
            for a in actors
        ]
    return consent


def test_consent_records_an_opposition(clinic: Clinic) -> None:
    pid = new_patient(clinic)
    response = clinic.fhir("POST", "Consent", resource=consent_for(pid))
    created = ok(response, 201)
    Consent.model_validate(created)
    cid = created["id"]
    assert response.headers["location"].endswith(f"/Consent/{cid}/_history/1")
    assert response.headers["etag"] == 'W/"1"'
    assert created["status"] == "active"
    assert created["provision"]["type"] == "deny"
    assert created["patient"] == {"reference": f"Patient/{pid}"}
    assert ok(clinic.fhir("GET", f"Consent/{cid}")) == created
    listed = ok(clinic.fhir("GET", f"Consent?patient=Patient/{pid}"))
    assert listed["total"] == 1
    assert [c["id"] for c in entries(listed)] == [cid]
    assert ok(clinic.fhir("GET", f"Consent?patient={pid}"))["total"] == 1
    # The whole group is covered: the patient is hidden, the opposition stays readable.
    refused(clinic.fhir("GET", f"Patient/{pid}"), 403)
    assert ok(clinic.fhir("GET", f"Patient?_id={pid}"))["total"] == 0
    assert ok(clinic.fhir("GET", f"Consent/{cid}"))["id"] == cid


def test_consent_naming_professionals(clinic: Clinic) -> None:
    other = clinic.world.user("other-clinician@example.org")
    clinic.world.member(clinic.group, other, Role.CLINICIAN)
    other_token = clinic.world.token(other)
    pid = new_patient(clinic)
    naming = consent_for(pid, actors=[str(other)])
    created = ok(clinic.fhir("POST", "Consent", resource=naming), 201)
    actors = [a["reference"]["reference"] for a in created["provision"]["actor"]]
    assert actors == [f"Practitioner/{other}"]
    refused(clinic.fhir("GET", f"Patient/{pid}", token=other_token), 403)
    assert ok(clinic.fhir("GET", f"Patient/{pid}"))["id"] == pid


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda c: c.update(status="draft"), "Consent.status"),
        (lambda c: c["provision"].update(type="permit"), "Consent.provision.type"),
        (lambda c: c["provision"].update(purpose=[{"code": "TREAT"}]), "Consent.provision.purpose"),
        (
            lambda c: c["provision"].update(period={"end": "2030-01-01"}),
            "Consent.provision.period.end",
        ),
        (lambda c: c.update(extension=[]), "Consent.extension"),
        (lambda c: c.update(patient={"reference": "Group/1"}), "Consent.patient"),
        (lambda c: c.update(status=True), "Consent.status"),
        (
            lambda c: c["provision"].update(
                actor=[{"role": {"text": "x"}, "reference": {"reference": "Practitioner/x"}}]
            ),
            "Consent.provision.actor[0].reference",
        ),
        (
            lambda c: c["provision"].update(
                actor=[
                    {
                        "role": {"text": "x"},
                        "reference": {
                            "reference": "Practitioner/00000000-0000-4000-8000-000000000bad"
                        },
                    }
                ]
            ),
            "Consent.provision.actor",
        ),
    ],
)
def test_consents_that_are_not_oppositions_are_422(clinic: Clinic, change: Any, path: str) -> None:
    pid = new_patient(clinic)
    consent = consent_for(pid)
    change(consent)
    body = refused(clinic.fhir("POST", "Consent", resource=consent), 422)
    assert path in [e for issue in body["issue"] for e in issue.get("expression", [])]
    assert ok(clinic.fhir("GET", f"Consent?patient={pid}"))["total"] == 0


def test_consent_errors(clinic: Clinic) -> None:
    missing = "00000000-0000-4000-8000-000000000bad"
    refused(clinic.fhir("POST", "Consent", resource=consent_for(missing)), 404)
    refused(clinic.fhir("GET", f"Consent/{missing}"), 404)
    refused(clinic.fhir("GET", "Consent"), 400)
    refused(clinic.fhir("GET", "Consent?patient=Group/1"), 400)
    refused(clinic.fhir("GET", f"Consent?patient={missing}"), 404)
    pid = new_patient(clinic)
    cid = ok(clinic.fhir("POST", "Consent", resource=consent_for(pid)), 201)["id"]
    refused(clinic.fhir("PUT", f"Consent/{cid}", resource=consent_for(pid)), 405)
    refused(clinic.fhir("DELETE", f"Consent/{cid}"), 405)
    # Coordinators and auditors see no patient data.
    refused(clinic.fhir("GET", f"Consent/{cid}", token=clinic.coordinator_token), 403)
    refused(clinic.fhir("GET", f"Consent?patient={pid}", token=clinic.auditor_token), 403)


# -- AuditEvent --------------------------------------------------------------------------------


def test_auditors_read_and_search_the_log(clinic: Clinic) -> None:
    pid = new_patient(clinic)
    ok(clinic.fhir("GET", f"Patient/{pid}"))
    refused(clinic.fhir("GET", f"Patient/{pid}", token=clinic.coordinator_token), 403)
    token = clinic.auditor_token
    about = ok(clinic.fhir("GET", f"AuditEvent?patient=Patient/{pid}", token=token))
    events = entries(about)
    assert about["total"] == len(events) == 3  # create, read, refused read: newest first
    for event in events:
        AuditEvent.model_validate(event)
    assert [e["action"] for e in events] == ["R", "R", "C"]
    assert [e["outcome"] for e in events] == ["4", "0", "0"]
    first = events[0]
    assert ok(clinic.fhir("GET", f"AuditEvent/{first['id']}", token=token)) == first
    denied = entries(ok(clinic.fhir("GET", f"AuditEvent?outcome=4&patient={pid}", token=token)))
    assert [e["id"] for e in denied] == [first["id"]]
    mine = entries(
        ok(clinic.fhir("GET", f"AuditEvent?agent=Practitioner/{clinic.clinician}", token=token))
    )
    assert {e["action"] for e in mine} >= {"C", "R"}
    today = utcnow().date().isoformat()
    tomorrow = (utcnow().date() + dt.timedelta(days=1)).isoformat()
    year = today[:4]
    now = utcnow().isoformat().replace("+00:00", "Z")
    # The create is the one C entry about the patient (the auditor's queries are E and R).
    for query, count in [
        (f"date={today}", 1),
        (f"date=ge{today}&date=lt{tomorrow}", 1),
        (f"date=lt{today}", 0),
        (f"date=gt{today}", 0),
        (f"date=le{today}", 1),
        (f"date={year}", 1),
        (f"date=eq{today[:7]}", 1),
        (f"date=ge{now}", 0),
        (f"date=lt{now}", 1),
        ("", 1),
    ]:
        found = ok(clinic.fhir("GET", f"AuditEvent?patient={pid}&action=C&{query}", token=token))
        assert found["total"] == count, query
    paged = ok(clinic.fhir("GET", f"AuditEvent?patient={pid}&action=R&_count=1", token=token))
    assert [e["resource"]["id"] for e in paged["entry"]] == [events[0]["id"]]
    assert paged["total"] == 2
    following = next(link["url"] for link in paged["link"] if link["relation"] == "next")
    rest = ok(clinic.world.call("GET", following.removeprefix("https://testserver"), token))
    assert [e["resource"]["id"] for e in rest["entry"]] == [events[1]["id"]]
    assert "next" not in {link["relation"] for link in rest["link"]}
    # The query of the auditor is itself recorded, with what it returned.
    last = clinic.world.audit_tail()[0]
    assert last["kind"] == "audit-query"


def test_the_log_is_for_auditors_and_append_only(clinic: Clinic) -> None:
    token = clinic.auditor_token
    event_id = entries(ok(clinic.fhir("GET", "AuditEvent?_count=1", token=token)))[0]["id"]
    refused(clinic.fhir("GET", "AuditEvent"), 403)
    refused(clinic.fhir("GET", f"AuditEvent/{event_id}", token=clinic.coordinator_token), 403)
    read_only = clinic.world.token(clinic.auditor, "read")
    refused(clinic.fhir("GET", "AuditEvent", token=read_only), 403)
    event = ok(clinic.fhir("GET", f"AuditEvent/{event_id}", token=token))
    for method, path in [
        ("POST", "AuditEvent"),
        ("PUT", f"AuditEvent/{event_id}"),
        ("DELETE", f"AuditEvent/{event_id}"),
    ]:
        body = copy.deepcopy(event) if method != "DELETE" else None
        assert refused(clinic.fhir(method, path, resource=body), 405)["issue"][0]["code"] == (
            "not-supported"
        )
    refused(clinic.fhir("GET", "AuditEvent/00000000-0000-4000-8000-000000000bad", token=token), 404)
    for query in ("action=X", "outcome=1", "date=yesterday", "date=2026-13", "agent=Group/1"):
        refused(clinic.fhir("GET", f"AuditEvent?{query}", token=token), 400)
    three = "date=ge2020&date=ge2021&date=ge2022"
    refused(clinic.fhir("GET", f"AuditEvent?{three}", token=token), 400)
