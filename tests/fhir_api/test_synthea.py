"""The Synthea R4 bulk export of ../shared/testdata/synthea, loaded through the services and the
FHIR API, then paged and searched: 13 Patients (no INS: registered with a provisional
identity, FR Core status PROV, the one thing registration adds), 43 Practitioners (members of
the group, made with the identity and groups services: Practitioner search is over members)
and 43 Organizations (care groups of their own: the Organization of a base is its group)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from hdsapp.core.actor import Role, system_actor
from hdsapp.core.db import utcnow
from hdsapp.identity import service as identity
from tests.conftest import TESTDATA
from tests.fhir_api.conftest import Clinic
from tests.fhir_api.test_shared_testdata import registrable

SYNTHEA = TESTDATA / "synthea"


def ndjson(name: str) -> list[dict[str, Any]]:
    lines = (SYNTHEA / f"{name}.000.ndjson").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def pages(clinic: Clinic, url: str, token: str | None = None) -> Iterator[dict[str, Any]]:
    while url:
        response = clinic.world.call("GET", url, token or clinic.token)
        assert response.status_code == 200, response.text
        bundle: dict[str, Any] = response.json()
        yield bundle
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        url = links.get("next", "").removeprefix("https://testserver")


def load_patients(clinic: Clinic) -> dict[str, dict[str, Any]]:
    """Synthea id -> (the Patient sent, its id here)."""
    loaded = {}
    for patient in ndjson("Patient"):
        sent = registrable(patient)
        response = clinic.fhir("POST", "Patient", resource=sent)
        assert response.status_code == 201, response.text
        loaded[patient["id"]] = {"sent": sent, "id": response.json()["id"]}
    return loaded


def test_synthea_patients_load_round_trip_and_page(clinic: Clinic) -> None:
    loaded = load_patients(clinic)
    assert len(loaded) == 13
    for entry in loaded.values():
        read = clinic.fhir("GET", f"Patient/{entry['id']}").json()
        strip = {"id", "meta"}
        assert {k: v for k, v in read.items() if k not in strip} == {
            k: v for k, v in entry["sent"].items() if k not in strip
        }
    seen: list[str] = []
    bundles = list(pages(clinic, f"{clinic.base}/Patient?_count=5"))
    assert [len(b["entry"]) for b in bundles] == [5, 5, 3]
    assert all(b["total"] == 13 for b in bundles)
    for bundle in bundles:
        seen.extend(e["resource"]["id"] for e in bundle["entry"])
    assert sorted(seen) == sorted(e["id"] for e in loaded.values())
    assert len(set(seen)) == 13


def test_synthea_family_names_with_an_apostrophe(clinic: Clinic) -> None:
    loaded = load_patients(clinic)
    keefe = next(e for e in loaded.values() if e["sent"]["name"][0]["family"] == "O'Keefe54")
    for family in ("O'Keefe54", "o\u2019keefe54", "OKEEFE54", "O Keefe54", "o-keefe54"):
        bundle = clinic.fhir("GET", f"Patient?family={family}&birthdate=2002-07-30").json()
        assert [e["resource"]["id"] for e in bundle["entry"]] == [keefe["id"]], family
    assert clinic.fhir("GET", "Patient?family=Keefe54&birthdate=2002-07-30").json()["total"] == 0
    # Three Synthea patients share a birth date; the family name tells them apart.
    same_day = [e for e in loaded.values() if e["sent"]["birthDate"] == "1927-05-21"]
    assert len(same_day) == 3
    for entry in same_day:
        family = entry["sent"]["name"][0]["family"]
        bundle = clinic.fhir("GET", f"Patient?family={family}&birthdate=1927-05-21").json()
        assert [e["resource"]["id"] for e in bundle["entry"]] == [entry["id"]]
        given = entry["sent"]["name"][0]["given"][0][:4]
        narrowed = clinic.fhir(
            "GET", f"Patient?family={family}&birthdate=1927-05-21&given={given}"
        ).json()
        assert narrowed["total"] == 1


def test_synthea_practitioners_as_members(clinic: Clinic) -> None:
    practitioners = ndjson("Practitioner")
    assert len(practitioners) == 43
    ids = {}
    with clinic.world.database.unit_of_work() as session:
        for practitioner in practitioners:
            name = practitioner["name"][0]
            email = next(t["value"] for t in practitioner["telecom"] if t["system"] == "email")
            created = identity.create_user(
                session=session,
                actor=system_actor(),
                email=email,
                display_name=" ".join([*name["given"], name["family"]]),
                password=None,
                now=utcnow(),
            )
            ids[practitioner["id"]] = created.user.id
            clinic.world.emails[created.user.id] = email
    for user_id in ids.values():
        clinic.world.member(clinic.group, user_id, Role.CLINICIAN)
    members = 43 + 3
    bundles = list(pages(clinic, f"{clinic.base}/Practitioner?_count=10"))
    assert [len(b["entry"]) for b in bundles] == [10, 10, 10, 10, 6]
    assert {b["total"] for b in bundles} == {members}
    seen = {e["resource"]["id"] for b in bundles for e in b["entry"]}
    assert {str(u) for u in ids.values()} <= seen
    assert len(seen) == members
    first = practitioners[0]
    for query in (f"name={first['name'][0]['family']}", f"name={first['name'][0]['given'][0]}"):
        found = clinic.fhir("GET", f"Practitioner?{query}").json()
        assert str(ids[first["id"]]) in {e["resource"]["id"] for e in found["entry"]}


def test_synthea_organizations_as_care_groups(clinic: Clinic) -> None:
    organizations = ndjson("Organization")
    assert len(organizations) == 43
    groups = {}
    for organization in organizations:
        groups[organization["id"]] = clinic.world.group(organization["name"], clinic.coordinator)
    for organization in organizations:
        group = groups[organization["id"]]
        response = clinic.world.call(
            "GET", f"/fhir/{group}/Organization/{group}", clinic.coordinator_token
        )
        assert response.status_code == 200, response.text
        assert response.json()["name"] == organization["name"]
        # The clinician belongs to none of them: as if they did not exist.
        hidden = clinic.world.call("GET", f"/fhir/{group}/Organization/{group}", clinic.token)
        assert hidden.status_code == 404
