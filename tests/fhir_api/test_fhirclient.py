"""A real FHIR client against the running app: the SMART on FHIR ``fhirclient`` package reads
the CapabilityStatement, reads and searches Patients and creates one, over HTTP on a loopback
port (uvicorn in a thread), authenticated with a personal access token."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from fhirclient import client
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRNotFoundException, FHIRUnauthorizedException

from tests.fhir_api.conftest import Clinic, example
from tests.patients.data import fr_patient, new_ins


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(app: FastAPI) -> Iterator[str]:
    """The app served on 127.0.0.1: its root URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def fhir_client(base: str, token: str | None) -> client.FHIRClient:
    smart = client.FHIRClient(settings={"app_id": "hdsapp-tests", "api_base": base})
    if token is not None:
        # fhirclient's server keeps a requests session: the personal access token goes there.
        smart.server.session.headers["Authorization"] = f"Bearer {token}"
    return smart


def test_fhirclient_reads_searches_and_creates(clinic: Clinic, served: str) -> None:
    base = f"{served}/fhir/{clinic.group}/"
    smart = fhir_client(base, clinic.token)
    statement = smart.server.capabilityStatement
    assert isinstance(statement, CapabilityStatement)
    assert statement.fhirVersion == "4.0.1"
    served_types = {r.type for r in statement.rest[0].resource}
    assert {"Patient", "Practitioner", "Organization", "Consent", "AuditEvent"} <= served_types

    # Create, with fhirclient's own model.
    sent = Patient(fr_patient(family="Dupont-Lefèvre", given="Zoé", ins=new_ins()))
    created = sent.create(smart.server)
    assert created is not None
    pid = created["id"]
    assert created["meta"]["versionId"] == "1"

    read = Patient.read(pid, smart.server)
    assert read.id == pid
    assert read.name[0].family == "Dupont-Lefèvre"
    assert read.name[0].given == ["Zoé"]
    assert read.birthDate.isostring == "1979-03-15"

    other = Patient(example("Patient-ins-qualified.json"))
    other.id = None
    created_other = other.create(smart.server)
    assert created_other is not None
    search = Patient.where(struct={"family": "dupont lefevre", "birthdate": "1979-03-15"})
    found = list(search.perform_resources_iter(smart.server))
    assert [p.id for p in found] == [pid]
    # One patient a page: fhirclient follows the next links.
    bundles = list(Patient.where(struct={"_count": "1"}).perform_iter(smart.server))
    assert [b.total for b in bundles] == [2, 2]
    assert [len(b.entry) for b in bundles] == [1, 1]
    assert {b.entry[0].resource.id for b in bundles} == {pid, created_other["id"]}

    with pytest.raises(FHIRNotFoundException):
        Patient.read("00000000-0000-4000-8000-000000000bad", smart.server)


def test_fhirclient_without_a_token(clinic: Clinic, served: str) -> None:
    smart = fhir_client(f"{served}/fhir/{clinic.group}/", None)
    assert smart.server.capabilityStatement.fhirVersion == "4.0.1"  # metadata is public
    with pytest.raises(FHIRUnauthorizedException):
        Patient.read("00000000-0000-4000-8000-000000000bad", smart.server)
