"""metadata (the CapabilityStatement) and the conformance artefacts of fhir/."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.searchparameter import SearchParameter

from hdsapp.fhir_api import artefacts
from hdsapp.fhir_api.definition import Operation, ResourceDef
from hdsapp.fhir_api.registry import RegistryError, build, registry
from hdsapp.fhir_api.wire import FhirRequest, FhirResult, Services
from hdsapp.patients.fhir_json import parse
from tests.conftest import REPO_ROOT
from tests.fhir_api.conftest import FHIR_JSON, Clinic


def test_metadata_is_a_valid_r4_capability_statement(clinic: Clinic) -> None:
    response = clinic.fhir("GET", "metadata", token=None)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{FHIR_JSON}; charset=utf-8"
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert statement["implementation"]["url"] == f"https://testserver{clinic.base}"
    served = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(served) == set(registry())
    for name, entry in registry().items():
        codes = [i["code"] for i in served[name]["interaction"]]
        assert codes == [op.code for op in entry.definition.operations]
        params = {p["name"]: p["definition"] for p in served[name].get("searchParam", [])}
        assert params == {p.name: p.definition for p in entry.search_params}
    patient = served["Patient"]
    assert {"read", "create", "update", "search-type"} <= {
        i["code"] for i in patient["interaction"]
    }
    assert patient["conditionalCreate"] is True
    assert patient["versioning"] == "versioned-update"
    assert {"identifier", "family", "given", "birthdate", "_id"} <= {
        p["name"] for p in patient["searchParam"]
    }
    # Case threads: a thread is a CareTeam, a message a Communication, a task a Task.
    for name, interactions, names in [
        ("CareTeam", ["read", "search-type"], {"_id", "patient"}),
        ("Communication", ["read", "search-type", "create"], {"thread", "patient", "_id"}),
        (
            "Task",
            ["read", "update", "create", "search-type"],
            {"owner", "status", "patient", "focus"},
        ),
    ]:
        assert [i["code"] for i in served[name]["interaction"]] == interactions
        assert {p["name"] for p in served[name]["searchParam"]} == names
    assert served["Task"]["versioning"] == "versioned-update"
    thread = next(p for p in served["Communication"]["searchParam"] if p["name"] == "thread")
    assert thread["definition"] == "urn:hdsapp:SearchParameter/Communication-thread"
    assert thread["type"] == "reference"


def test_metadata_for_any_group_and_format(clinic: Clinic) -> None:
    other = clinic.world.call("GET", "/fhir/00000000-0000-4000-8000-000000000000/metadata", None)
    assert other.status_code == 200
    assert other.json()["rest"] == clinic.fhir("GET", "metadata").json()["rest"]
    assert clinic.fhir("GET", "metadata?_format=json").status_code == 200
    refused = clinic.fhir("GET", "metadata?_format=xml")
    assert refused.status_code == 406
    assert refused.json()["resourceType"] == "OperationOutcome"


def test_search_parameter_artefacts_are_valid_and_all_served() -> None:
    parameters = artefacts.search_parameters()
    assert parameters
    served = {(t, p.definition) for t, e in registry().items() for p in e.search_params}
    for parameter in parameters:
        SearchParameter.model_validate(parameter)
        assert parameter["url"].startswith("urn:hdsapp:SearchParameter/")
        for base in parameter["base"]:
            assert (base, parameter["url"]) in served
    assert len(served) == sum(len(p["base"]) for p in parameters)


@pytest.mark.parametrize(
    "path", sorted((REPO_ROOT / "fhir" / "examples").glob("*.json")), ids=lambda p: p.name
)
def test_examples_are_valid(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    parse(data["resourceType"], data)


def test_thread_search_parameters_name_their_elements() -> None:
    """The custom ``thread`` parameter and the others over threads say which element they
    search (Communication.about, Task.for...), for clients that read the definitions."""
    by_url = {p["url"]: p for p in artefacts.search_parameters()}
    expressions = {
        "Communication-thread": "Communication.about.where(resolve() is CareTeam)",
        "Communication-patient": "Communication.subject.where(resolve() is Patient)",
        "CareTeam-patient": "CareTeam.subject.where(resolve() is Patient)",
        "Task-patient": "Task.for.where(resolve() is Patient)",
        "Task-owner": "Task.owner",
        "Task-focus": "Task.focus",
    }
    for name, expression in expressions.items():
        assert by_url[f"urn:hdsapp:SearchParameter/{name}"]["expression"] == expression


def test_base_capability_statement_is_valid() -> None:
    CapabilityStatement.model_validate(artefacts.read(artefacts.BASE_CAPABILITY))


def test_artefacts_are_found_in_a_checkout_or_an_installed_wheel(tmp_path: Path) -> None:
    installed, checkout = tmp_path / "site" / "_fhir_artefacts", tmp_path / "repo" / "fhir"
    shutil.copytree(REPO_ROOT / "fhir", checkout)
    assert artefacts.locate((installed, checkout)) == checkout
    shutil.copytree(REPO_ROOT / "fhir", installed)
    assert artefacts.locate((installed, checkout)) == installed
    assert artefacts.search_parameters(root=installed) == artefacts.search_parameters()
    with pytest.raises(artefacts.ArtefactsMissing):
        artefacts.locate((tmp_path / "nowhere",))
    # The wheel puts the folder where the loader looks for it.
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    force = project["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force["fhir"] == "hdsapp/_fhir_artefacts"
    assert artefacts.INSTALLED.parts[-2:] == ("hdsapp", "_fhir_artefacts")


def _noop(services: Services, request: FhirRequest) -> FhirResult:
    raise AssertionError


def _parameter(base: str, code: str) -> dict[str, Any]:
    return {"base": [base], "code": code, "type": "token", "url": f"urn:x:{base}-{code}"}


def test_registry_refuses_parameters_without_definitions_and_the_reverse() -> None:
    definition = ResourceDef(
        type="Patient",
        operations=(Operation(code="search-type", action="patient.search", handler=_noop),),
        search=("identifier",),
    )
    assert build([definition], [_parameter("Patient", "identifier")])
    with pytest.raises(RegistryError, match="no SearchParameter artefact"):
        build([definition], [])
    with pytest.raises(RegistryError, match="no resource type handles"):
        build([definition], [_parameter("Patient", "identifier"), _parameter("Patient", "x")])
    with pytest.raises(RegistryError, match="two SearchParameters"):
        build([definition], [_parameter("Patient", "identifier")] * 2)
