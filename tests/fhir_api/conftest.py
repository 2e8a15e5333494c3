"""A care group to talk FHIR to: a clinician, a coordinator and an auditor with real personal
access tokens (real authentication through hdsapp.identity), on both database backends."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import Response
from sqlalchemy import func, select
from sqlmodel import col

from hdsapp.core.actor import Role
from hdsapp.models.patient import Patient
from tests.conftest import REPO_ROOT
from tests.groups.world import World, world
from tests.threads.conftest import Ward

__all__ = ["Ward", "world"]

FHIR_JSON = "application/fhir+json"
EXAMPLES = REPO_ROOT / "fhir" / "examples"


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def result_refs(event: dict[str, Any]) -> list[str]:
    """The references an AuditEvent lists as the objects of the access (role 4, "domain
    resource"): a read's resource, a search's results."""
    return [
        e["what"]["reference"]
        for e in event.get("entity", [])
        if e.get("role", {}).get("code") == "4" and "reference" in e.get("what", {})
    ]


@dataclass
class Clinic:
    world: World
    group: uuid.UUID
    clinician: uuid.UUID
    coordinator: uuid.UUID
    auditor: uuid.UUID
    token: str
    coordinator_token: str
    auditor_token: str

    @property
    def base(self) -> str:
        return f"/fhir/{self.group}"

    def fhir(
        self,
        method: str,
        path: str,
        *,
        token: str | None = "",
        resource: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Response:
        """A FHIR call on the group's base, as the clinician unless ``token`` says otherwise
        (None: anonymous); ``resource`` is sent as application/fhir+json."""
        sent = dict(headers or {})
        if resource is not None:
            sent.setdefault("Content-Type", FHIR_JSON)
            kwargs["content"] = json.dumps(resource, ensure_ascii=False).encode()
        url = f"{self.base}/{path}" if path else self.base
        return self.world.call(
            method, url, self.token if token == "" else token, headers=sent, **kwargs
        )

    def patients_stored(self) -> int:
        with self.world.database.session() as session:
            statement = select(func.count()).select_from(Patient)
            statement = statement.where(col(Patient.group_id) == self.group)
            return int(session.execute(statement).scalar_one())


def build_clinic(world: World) -> Clinic:
    coordinator = world.user("coordinator@example.org")
    clinician = world.user("clinician@example.org")
    auditor = world.user("auditor@example.org")
    group = world.group("Maison de santé du Port", coordinator)
    world.member(group, clinician, Role.CLINICIAN)
    world.member(group, auditor, Role.AUDITOR)
    return Clinic(
        world=world,
        group=group,
        clinician=clinician,
        coordinator=coordinator,
        auditor=auditor,
        token=world.token(clinician, "read,write"),
        coordinator_token=world.token(coordinator, "read,write"),
        auditor_token=world.token(auditor, "read,audit"),
    )


@pytest.fixture
def clinic(world: World) -> Clinic:
    return build_clinic(world)


# -- case threads (CareTeam, Communication, Task) --------------------------------------------


def fhir_call(
    ward: Ward,
    who: str,
    method: str,
    path: str,
    *,
    resource: Any = None,
    headers: dict[str, str] | None = None,
    group: uuid.UUID | None = None,
) -> Response:
    """A FHIR call on group A's base (or ``group``'s) as ``who`` of the ward."""
    sent = dict(headers or {})
    kwargs: dict[str, Any] = {}
    if resource is not None:
        sent.setdefault("Content-Type", FHIR_JSON)
        kwargs["content"] = json.dumps(resource, ensure_ascii=False).encode()
    url = f"/fhir/{group or ward.gid}/{path}"
    result: Response = ward.call(method, who, url, headers=sent, **kwargs)
    return result


def audited_once(ward: Ward, call: Callable[[], Response]) -> tuple[Response, dict[str, Any]]:
    """Run ``call``; it must leave exactly one audit entry, returned with the response."""
    before = ward.world.audit_count()
    response = call()
    assert ward.world.audit_count() == before + 1, response.text
    return response, ward.world.audit_tail()[0]


@pytest.fixture
def ward(world: World, app: FastAPI) -> Iterator[Ward]:
    built = Ward(world, app)
    yield built
    built.close()
