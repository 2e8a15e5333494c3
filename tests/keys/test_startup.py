"""The start-up self-check (refuse to serve, naming what is missing), the readiness check, and
how crypto failures reach a client: a 500 problem with a request id, nothing else."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hdsapp.app import create_app
from hdsapp.config import Settings
from hdsapp.core.actor import system_actor
from hdsapp.core.crypto.keyring import keyring_for
from hdsapp.core.db import Database, utcnow
from hdsapp.dependencies import KeyringDep, SessionDep
from hdsapp.keys import service
from hdsapp.models.care_group import CareGroup
from hdsapp.models.patient import Patient
from tests.core.crypto.keyring_support import message
from tests.keys.conftest import keys_env

MARKER = b"Jeanne Canary-Startup 1961"


def _settings(settings: Settings) -> Settings:
    values = settings.model_dump()
    values.update({k.removeprefix("HDS_").lower(): v for k, v in keys_env(settings).items()})
    return Settings.model_validate(values)


def _patient(database: Database, settings: Settings) -> tuple[uuid.UUID, uuid.UUID]:
    """A patient whose identity is sealed with its group's data key, as the patients domain
    stores it."""
    keyring = keyring_for(settings)
    group = CareGroup(name="Test group")
    patient_id = uuid.uuid4()
    with database.unit_of_work() as session:
        session.add(group)
        session.flush()
        aad = message(group.id, None, patient_id)
        session.add(
            Patient(
                id=patient_id,
                group_id=group.id,
                identity=keyring.seal(session, aad=aad, plaintext=MARKER),
                identity_status="PROV",
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    return group.id, patient_id


def test_starts_when_every_key_is_there(settings: Settings, database: Database) -> None:
    settings = _settings(settings)
    _patient(database, settings)
    with TestClient(create_app(settings, database), base_url="https://testserver") as client:
        body = client.get("/readyz").json()
    assert {c["name"]: c["ok"] for c in body["checks"]}["keys"] is True


def test_refuses_to_serve_when_a_data_key_version_is_missing(
    settings: Settings, database: Database
) -> None:
    settings = _settings(settings)
    group, _ = _patient(database, settings)
    with database.unit_of_work() as session:
        session.execute(sa.text("DELETE FROM data_key"))
    app = create_app(settings, database)
    with pytest.raises(RuntimeError, match="refusing to serve") as info:
        TestClient(app, base_url="https://testserver").__enter__()
    assert f"patient.identity: data key version 1 of {group} is missing" in str(info.value)
    assert service.self_check(database=database, keyring=keyring_for(settings), require_root=False)


def test_refuses_to_serve_when_the_root_key_version_is_gone(
    settings: Settings, database: Database
) -> None:
    settings = _settings(settings)
    group, _ = _patient(database, settings)
    keyring = keyring_for(settings)
    service.rotate_root(database=database, keyring=keyring, actor=system_actor())
    # An operator restores an old key file... without the version the keys are wrapped under.
    root_file = Path(settings.root_key_path)
    lines = root_file.read_text().splitlines()
    root_file.write_text("\n".join([lines[0], lines[1]]) + "\n")  # version 1 only
    root_file.chmod(0o600)
    problems = service.self_check(database=database, keyring=keyring, require_root=False)
    assert any(
        f"group {group}: KEK version 1 is wrapped by root key version 2, which the provider" in p
        for p in problems
    ), problems
    with pytest.raises(RuntimeError, match="root key version 2"):
        TestClient(create_app(settings, database), base_url="https://testserver").__enter__()


def test_production_refuses_to_serve_without_a_root_key(
    settings: Settings, database: Database
) -> None:
    settings = Settings.model_validate({**_settings(settings).model_dump(), "env": "production"})
    assert not settings.root_key_path.exists()
    problems = service.self_check(
        database=database, keyring=keyring_for(settings), require_root=True
    )
    assert problems
    assert "root key" in problems[0]
    assert str(settings.root_key_path) in problems[0]


def _crypto_app(settings: Settings, database: Database) -> FastAPI:
    app = create_app(settings, database)

    @app.get("/test/open/{group_id}")
    def open_it(group_id: uuid.UUID, session: SessionDep, keyring: KeyringDep) -> dict[str, str]:
        envelope = app.state.test_envelope
        plaintext = keyring.open(session, aad=message(group_id, None, "p1"), envelope=envelope)
        return {"plaintext": plaintext.decode()}

    return app


def test_a_corrupted_ciphertext_is_a_500_problem_without_content(
    settings: Settings, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(settings)
    app = _crypto_app(settings, database)
    group = uuid.uuid4()
    with database.unit_of_work() as session:
        envelope = app.state.keyring.seal(session, aad=message(group, None, "p1"), plaintext=MARKER)
    caplog.set_level(logging.INFO)
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        app.state.test_envelope = envelope
        assert client.get(f"/test/open/{group}").json() == {"plaintext": MARKER.decode()}
        cases = {
            "tampered": envelope[:-1] + bytes([envelope[-1] ^ 1]),
            "truncated": envelope[:10],
            "unknown version": envelope[:1] + (7).to_bytes(4, "big") + envelope[5:],
        }
        for name, broken in cases.items():
            app.state.test_envelope = broken
            response = client.get(f"/test/open/{group}", headers={"x-request-id": f"req-{name}"})
            assert response.status_code == 500, name
            body = response.json()
            assert response.headers["content-type"].startswith("application/problem+json")
            assert body["type"] == "urn:hdsapp:problem:crypto-failure"
            assert body["request_id"]
            text = response.text
            assert MARKER.decode() not in text
            assert "Traceback" not in text
            assert "File " not in text
    assert any(r.getMessage() == "crypto failure" for r in caplog.records)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert MARKER.decode() not in logged
    assert MARKER.hex() not in logged
