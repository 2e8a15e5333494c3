"""Actors, entries and a signer for the audit tests."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from types import MappingProxyType

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from audit.note import Signer
from hdsapp.auditing import service
from hdsapp.auditing.signing import create_signing_key, load_signer
from hdsapp.config import Settings
from hdsapp.core.accesslog import Access, Outcome, record
from hdsapp.core.actor import Actor, RequestInfo, Role, Scope
from hdsapp.core.db import Database, utcnow
from hdsapp.dependencies import get_actor

GROUP = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
OTHER_GROUP = uuid.UUID("00000000-0000-4000-8000-0000000000a2")
PATIENT = uuid.UUID("00000000-0000-4000-8000-0000000000b1")
OTHER_PATIENT = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
CLINICIAN_ID = uuid.UUID("00000000-0000-4000-8000-0000000000c1")
AUDITOR_ID = uuid.UUID("00000000-0000-4000-8000-0000000000d1")
REQUEST = RequestInfo(request_id="test-request-1", client_ip="198.51.100.4", user_agent="pytest")


def user(
    user_id: uuid.UUID,
    memberships: dict[uuid.UUID, Role],
    *,
    kind: str = "user",
    scopes: frozenset[Scope] = frozenset({Scope.READ, Scope.WRITE, Scope.AUDIT}),
    authenticated_at: dt.datetime | None = None,
) -> Actor:
    return Actor(
        kind=kind,  # type: ignore[arg-type]
        request=REQUEST,
        user_id=user_id,
        memberships=MappingProxyType(memberships),
        scopes=scopes,
        authenticated_at=authenticated_at or utcnow(),
        second_factor=True,
    )


def auditor(**extra: object) -> Actor:
    return user(AUDITOR_ID, {GROUP: Role.AUDITOR}, **extra)  # type: ignore[arg-type]


def clinician() -> Actor:
    return user(CLINICIAN_ID, {GROUP: Role.CLINICIAN, OTHER_GROUP: Role.CLINICIAN})


def seed(database: Database, count: int = 10) -> None:
    """``count`` entries alternating between GROUP and OTHER_GROUP, some denied."""
    with database.unit_of_work() as session:
        for i in range(count):
            group, patient = (GROUP, PATIENT) if i % 2 == 0 else (OTHER_GROUP, OTHER_PATIENT)
            record(
                session,
                clinician(),
                Access(
                    kind="read",
                    action="R",
                    group_id=group,
                    patient_id=patient,
                    resource_type="Communication",
                    resource_id=str(i),
                    outcome=Outcome.DENIED if i % 3 == 2 else Outcome.SUCCESS,
                ),
            )


def signer_for(settings: Settings) -> Signer:
    create_signing_key(settings)
    return load_signer(settings)


def sign(database: Database, signer: Signer) -> int | None:
    with database.unit_of_work() as session:
        return service.sign_new_checkpoint(session=session, signer=signer).checkpoint_size


class Caller:
    """Switch the actor the app sees."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.actor: Actor = auditor()
        app.dependency_overrides[get_actor] = self.current

    def current(self) -> Actor:
        return self.actor


@pytest.fixture
def caller(app: FastAPI) -> Iterator[Caller]:
    c = Caller(app)
    yield c
    app.dependency_overrides.clear()


@pytest.fixture
def api(app: FastAPI, caller: Caller) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver") as client:
        yield client
