"""Patients and oppositions through the HTTP API, with real tokens."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from fhir.resources.R4B.consent import Consent
from sqlalchemy import func, select, text

from hdsapp.core.actor import Role
from hdsapp.core.db import utcnow
from hdsapp.models.patient import Patient
from hdsapp.patients import service
from tests.groups.world import World
from tests.patients.data import fr_patient, new_ins


class Clinic:
    def __init__(self, world: World) -> None:
        self.world = world
        self.users = {
            name: world.user(f"{name}@example.org")
            for name in ("coord", "doc", "nurse", "pharma", "auditor", "outsider")
        }
        self.gid = world.group("CPTS", self.users["coord"])
        for name in ("doc", "nurse", "pharma"):
            world.member(self.gid, self.users[name], Role.CLINICIAN)
        world.member(self.gid, self.users["auditor"], Role.AUDITOR)
        self.tokens = {name: world.token(uid) for name, uid in self.users.items()}
        self.url = f"/api/v1/groups/{self.gid}/patients"

    def call(self, method: str, who: str, path: str = "", **kwargs: Any) -> Any:
        return self.world.call(method, self.url + path, self.tokens[who], **kwargs)

    def register(self, who: str = "doc", **kwargs: Any) -> dict[str, Any]:
        response = self.call("POST", who, json=fr_patient(**kwargs))
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def patient_count(self) -> int:
        with self.world.database.session() as session:
            return int(session.execute(select(func.count()).select_from(Patient)).scalar_one())


def test_register_read_and_search(world: World) -> None:
    c = Clinic(world)
    ins = new_ins()
    before = world.audit_count()
    created = c.register(ins=ins, family="Lefèvre-D'Arc")
    pid = created["id"]
    assert created["resource"]["id"] == pid
    assert created["identity_status"] == "QUAL"
    assert created["resource"]["meta"]["versionId"] == "1"
    assert world.audit_count() == before + 1
    tail = world.audit_tail()[0]
    assert (tail["kind"], tail["outcome"], str(tail["patient_id"]).replace("-", "")) == (
        "create",
        0,
        pid.replace("-", ""),
    )
    read = c.call("GET", "nurse", f"/{pid}")
    assert read.status_code == 200
    assert read.json()["resource"]["name"] == created["resource"]["name"]
    spaced = " ".join([ins[:1], ins[1:3], ins[3:5], ins[5:7], ins[7:10], ins[10:13], ins[13:]])
    for value in (ins, spaced):
        found = c.call(
            "GET", "pharma", params={"identifier": f"urn:oid:1.2.250.1.213.1.4.10|{value}"}
        )
        assert found.status_code == 200, found.text
        assert [p["id"] for p in found.json()["items"]] == [pid]
        assert found.json()["total"] == 1
    by_name = c.call("GET", "doc", params={"family": "LEFEVRE DARC", "birthdate": "1979-03-15"})
    assert [p["id"] for p in by_name.json()["items"]] == [pid]
    nobody = c.call("GET", "doc", params={"family": "Lefevre", "birthdate": "1979-03-15"})
    assert nobody.json() == {"items": [], "next_cursor": None, "total": 0}
    # Nothing identifying in clear in the database.
    with world.database.session() as session:
        row = session.execute(text("SELECT * FROM patient")).one()._mapping
    dumped = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
    assert ins.encode() not in dumped
    assert b"Lef" not in dumped
    assert b"1979" not in dumped


def test_a_second_registration_of_the_same_ins_is_refused(world: World) -> None:
    c = Clinic(world)
    ins = new_ins()
    first = c.register(ins=ins)
    again = c.call("POST", "nurse", json=fr_patient(family="Autre", ins=ins))
    assert again.status_code == 409
    assert again.json()["patient_id"] == first["id"]
    assert c.patient_count() == 1


def test_bad_patients_are_refused_and_nothing_is_stored(world: World) -> None:
    c = Clinic(world)
    cases: list[tuple[dict[str, Any], str]] = [
        ({**fr_patient(), "active": "true"}, "Patient.active"),
        ({**fr_patient(), "birthDate": "15/03/1979"}, "Patient.birthDate"),
        ({**fr_patient(), "gender": "f"}, "Patient.gender"),
        ({**fr_patient(), "name": [{"family": ["Martin"]}]}, "Patient.name[0].family"),
        (fr_patient(status="VALI", ins=new_ins()), "Patient.identifier"),
        (fr_patient(status=None), "Patient.extension"),
        (fr_patient(ins="279037512345600"), "Patient.identifier[0].value"),
        ({**fr_patient(), "resourceType": "Practitioner"}, "Patient.resourceType"),
    ]
    for body, path in cases:
        before = world.audit_count()
        response = c.call("POST", "doc", json=body)
        assert response.status_code == 422, (path, response.text)
        assert path in [e["path"] for e in response.json()["errors"]], response.json()
        assert world.audit_count() == before + 1  # the failed attempt is recorded
    refused = c.call("POST", "doc", json=fr_patient(status="PROV", ins=new_ins()))
    assert refused.json()["type"].endswith("ins-requires-qualified-identity")
    assert c.call("POST", "doc", json=[fr_patient()]).status_code == 422
    assert (
        c.call(
            "POST", "doc", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert c.patient_count() == 0


def test_who_sees_patients(world: World) -> None:
    c = Clinic(world)
    pid = c.register(ins=new_ins())["id"]
    assert c.call("GET", "coord", f"/{pid}").status_code == 403
    assert c.call("GET", "auditor", f"/{pid}").status_code == 403
    assert c.call("GET", "coord").status_code == 403
    assert c.call("POST", "coord", json=fr_patient()).status_code == 403
    assert c.call("GET", "outsider", f"/{pid}").status_code == 404
    assert c.call("GET", "outsider").status_code == 404
    assert c.call("GET", "doc", f"/{uuid.uuid4()}").status_code == 404
    assert world.call("GET", f"{c.url}/{pid}", None).status_code == 401


def test_an_opposition_blocks_and_lifting_it_restores(world: World) -> None:
    c = Clinic(world)
    pid = c.register(ins=new_ins())["id"]
    informed = (utcnow() - dt.timedelta(hours=1)).isoformat()
    recorded = c.call(
        "POST", "doc", f"/{pid}/oppositions", json={"scope": "group", "informed_at": informed}
    )
    assert recorded.status_code == 201, recorded.text
    opposition = recorded.json()
    assert opposition["status"] == "active"
    assert opposition["informed_by"] == str(c.users["doc"])
    consent = Consent.model_validate(opposition["resource"])
    assert consent.provision is not None
    assert consent.provision.type == "deny"
    for who in ("doc", "nurse", "pharma"):
        assert c.call("GET", who, f"/{pid}").status_code == 403
        assert c.call("GET", who).json()["total"] == 0
    listed = c.call("GET", "nurse", f"/{pid}/oppositions")
    assert [o["id"] for o in listed.json()["items"]] == [opposition["id"]]
    with world.database.session() as session:
        assert service.opposition_applies(
            session, patient_id=uuid.UUID(pid), user_id=c.users["nurse"]
        )
    lifted = c.call(
        "PATCH", "nurse", f"/{pid}/oppositions/{opposition['id']}", json={"status": "inactive"}
    )
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted_by"] == str(c.users["nurse"])
    assert Consent.model_validate(lifted.json()["resource"]).status == "inactive"
    assert c.call("GET", "doc", f"/{pid}").status_code == 200
    again = c.call(
        "PATCH", "nurse", f"/{pid}/oppositions/{opposition['id']}", json={"status": "inactive"}
    )
    assert again.status_code == 409


def test_an_opposition_naming_professionals_blocks_only_them(world: World) -> None:
    c = Clinic(world)
    pid = c.register(ins=new_ins())["id"]
    body = {
        "scope": "professionals",
        "professionals": [str(c.users["pharma"])],
        "informed_at": utcnow().isoformat(),
    }
    recorded = c.call("POST", "doc", f"/{pid}/oppositions", json=body)
    assert recorded.status_code == 201, recorded.text
    actors = Consent.model_validate(recorded.json()["resource"]).provision.actor  # type: ignore[union-attr]
    assert actors is not None
    assert [a.reference.reference for a in actors] == [f"Practitioner/{c.users['pharma']}"]
    assert c.call("GET", "pharma", f"/{pid}").status_code == 403
    assert c.call("GET", "pharma").json()["total"] == 0
    assert c.call("GET", "nurse", f"/{pid}").status_code == 200
    assert c.call("GET", "nurse").json()["total"] == 1


def test_bad_oppositions(world: World) -> None:
    c = Clinic(world)
    pid = c.register(ins=new_ins())["id"]
    now = utcnow().isoformat()
    cases = [
        {"scope": "group", "professionals": [str(c.users["nurse"])], "informed_at": now},
        {"scope": "professionals", "professionals": [], "informed_at": now},
        {"scope": "professionals", "professionals": [str(c.users["outsider"])], "informed_at": now},
        {"scope": "group", "informed_at": (utcnow() + dt.timedelta(days=1)).isoformat()},
        {"scope": "group", "informed_by": str(c.users["outsider"]), "informed_at": now},
        {"scope": "everyone", "informed_at": now},
        {"scope": "group"},
        {"scope": "group", "informed_at": 1700000000},
        {"scope": "group", "informed_at": "2026-01-01T10:00:00"},
    ]
    for body in cases:
        response = c.call("POST", "doc", f"/{pid}/oppositions", json=body)
        assert response.status_code == 422, (body, response.text)
    assert c.call("GET", "doc", f"/{pid}/oppositions").json()["items"] == []
    wrong = c.call(
        "POST", "doc", f"/{uuid.uuid4()}/oppositions", json={"scope": "group", "informed_at": now}
    )
    assert wrong.status_code == 404
