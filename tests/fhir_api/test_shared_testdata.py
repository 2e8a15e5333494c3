"""The FHIR test cases and national directory files of ../shared/testdata (see its README):
invalid input is refused with a 4xx OperationOutcome and stores nothing; valid Patients
round-trip unchanged apart from ``id`` and ``meta``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from hdsapp.patients.ins import IDENTITY_RELIABILITY_URL, IDENTITY_STATUS_SYSTEM
from tests.conftest import TESTDATA
from tests.fhir_api.conftest import FHIR_JSON, Clinic, load

CASES = TESTDATA / "fhir-test-cases"
MANIFEST: list[dict[str, Any]] = json.loads(
    (CASES / "invalid" / "MANIFEST.fhir-test-cases.json").read_text()
)
INVALID = [entry for entry in MANIFEST if entry["kind"] == "invalid"]
VALID_DIR = CASES / "valid"
ANS = TESTDATA / "ans"

# Why each invalid case is refused here: (status, the expression our OperationOutcome names,
# or None). Where the reference validator names an element, ours is the same element (or the
# unknown element itself where it names only its parent).
REFUSALS: dict[str, tuple[int, str | None]] = {
    "patient-id-bad-1.json": (422, "Patient.id"),
    "patient-id-bad-2.json": (422, "Patient.id"),
    "patient-id-bad-3.json": (422, "Patient.id"),
    "ai3.json": (422, "Patient.unknownElement"),
    "ai4.json": (422, "Patient.birthDate"),
    "json-comments.json": (422, "Patient.fhir_comments"),
    # Not JSON (comments, missing or extra commas, unquoted names, unbalanced brackets): 400.
    "json-comments-1.json": (400, None),
    "json-comments-2.json": (400, None),
    "json-comma-bad-1.json": (400, None),
    "json-comma-bad-2.json": (400, None),
    "json-no-quotes-1.json": (400, None),
    "json-no-quotes-2.json": (400, None),
    "bad-json-close-1.json": (400, None),
    "bad-json-close-2.json": (400, None),
    "bad-json-close-3.json": (400, None),
    "pat-security-bad-string.json": (422, "Patient.name[0].text"),
    "pat-security-bad-xhtml.json": (422, "Patient.text.div"),
    # The reference validator cannot resolve the example.org extension; we accept unknown
    # extensions (they round-trip, see valid/patient-name-extensions.json), but this Patient has
    # no FR Core identity reliability status, which registration requires.
    "pat-example-ext.json": (422, "Patient.extension"),
    # A Communication (a message) with HTML-like markup in its markdown: refused where the
    # reference validator flags it.
    "bad-markdown.json": (422, "Communication.note[0].text"),
    # Types this server does not serve (no create): 404, whatever the content.
    "Observation-ex-pain.json": (404, None),
    "bundle-duplicate-id.json": (404, None),
    "bundle-id-search-2.json": (404, None),
}
# Refused here for another reason than the reference validator's (the comment above).
OTHER_REASON = {"pat-example-ext.json"}
SERVED_FOR_CREATE = {"Patient"}
# valid/ cases this server refuses on purpose: the HL7 validator's security checks are always on
# here (the manifest: "Bad String, but with no security checks on").
REFUSED_VALID = {"pat-security-good2.json": "Patient.name[0].text"}


def test_every_invalid_case_is_listed() -> None:
    assert {entry["file"] for entry in INVALID} == set(REFUSALS)
    for entry in INVALID:
        assert (CASES / "invalid" / entry["expected_outcome_file"]).is_file()


def _target(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return "Patient"
    resource_type = data.get("resourceType") if isinstance(data, dict) else None
    return resource_type if isinstance(resource_type, str) else "Patient"


def _expressions(body: dict[str, Any]) -> list[str]:
    return [e for issue in body["issue"] for e in issue.get("expression", [])]


def _reference_expressions(entry: dict[str, Any]) -> list[str]:
    expected = load(CASES / "invalid" / entry["expected_outcome_file"])
    return [
        e
        for issue in expected["issue"]
        if issue["severity"] in {"error", "fatal"}
        for e in issue.get("expression", [])
    ]


@pytest.mark.parametrize("entry", INVALID, ids=lambda e: e["file"])
def test_invalid_cases_are_refused_and_store_nothing(clinic: Clinic, entry: dict[str, Any]) -> None:
    raw = (CASES / "invalid" / entry["file"]).read_bytes()
    status, expression = REFUSALS[entry["file"]]
    target = _target(raw)
    headers = {"Content-Type": FHIR_JSON}
    response = clinic.fhir("POST", target, content=raw, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    OperationOutcome.model_validate(body)
    assert all(issue["severity"] == "error" for issue in body["issue"])
    if expression is not None:
        assert expression in _expressions(body)
    if expression is not None and entry["file"] not in OTHER_REASON:
        reference = _reference_expressions(entry)
        assert any(expression == e or expression.startswith(e + ".") for e in reference), (
            f"{entry['file']}: ours {expression}, the reference validator's {reference}"
        )
    if target not in SERVED_FOR_CREATE:
        # Posted as a Patient instead, it is refused too.
        as_patient = clinic.fhir("POST", "Patient", content=raw, headers=headers)
        assert as_patient.status_code in {400, 422}
        OperationOutcome.model_validate(as_patient.json())
    assert clinic.patients_stored() == 0


@pytest.mark.parametrize("path", sorted(ANS.glob("INVALID-*.json")), ids=lambda p: p.name)
def test_malformed_national_directory_files_are_refused(clinic: Clinic, path: Path) -> None:
    raw = path.read_bytes()
    headers = {"Content-Type": FHIR_JSON}
    for target in ("Patient", "Practitioner"):
        response = clinic.fhir("POST", target, content=raw, headers=headers)
        assert 400 <= response.status_code < 500, response.text
        OperationOutcome.model_validate(response.json())
    response = clinic.fhir("POST", "Patient", content=raw, headers=headers)
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "malformed-json"
    assert clinic.patients_stored() == 0


def registrable(resource: dict[str, Any]) -> dict[str, Any]:
    """What registration requires of a Patient that FR Core does (the patients domain): an
    identity reliability status (PROV: nothing verified), a family name and a birth date —
    added without touching what is there."""
    patient = copy.deepcopy(resource)
    status = {
        "url": IDENTITY_RELIABILITY_URL,
        "extension": [
            {
                "url": "identityStatus",
                "valueCoding": {"system": IDENTITY_STATUS_SYSTEM, "code": "PROV"},
            }
        ],
    }
    patient["extension"] = [*patient.get("extension", []), status]
    if not any("family" in name for name in patient.get("name", [])):
        patient["name"] = [*patient.get("name", []), {"use": "official", "family": "Doe"}]
    patient.setdefault("birthDate", "1970-01-01")
    return patient


VALID_PATIENTS = sorted(
    p.name for p in VALID_DIR.glob("*.json") if load(p).get("resourceType") == "Patient"
)


@pytest.mark.parametrize("name", VALID_PATIENTS)
def test_valid_patients_round_trip(clinic: Clinic, name: str) -> None:
    sent = registrable(load(VALID_DIR / name))
    response = clinic.fhir("POST", "Patient", resource=sent)
    if name in REFUSED_VALID:
        assert response.status_code == 422
        assert REFUSED_VALID[name] in _expressions(response.json())
        return
    assert response.status_code == 201, response.text
    pid = response.json()["id"]
    read = clinic.fhir("GET", f"Patient/{pid}").json()
    kept_meta = {k: v for k, v in sent.get("meta", {}).items() if k in {"profile", "tag"}}
    assert {k: v for k, v in read["meta"].items() if k in {"profile", "tag"}} == kept_meta
    strip = {"id", "meta"}
    assert {k: v for k, v in read.items() if k not in strip} == {
        k: v for k, v in sent.items() if k not in strip
    }


def test_primitive_extensions_keep_their_nulls(clinic: Clinic) -> None:
    sent = registrable(load(VALID_DIR / "patient-name-extensions.json"))
    pid = clinic.fhir("POST", "Patient", resource=sent).json()["id"]
    read = clinic.fhir("GET", f"Patient/{pid}")
    name = read.json()["name"][0]
    assert name["given"] == [None, "James"]
    assert name["_given"][0]["extension"][0]["valueString"] == "five"
    assert b'"given":[null,"James"]' in read.content
