"""Strict FHIR JSON: wrong JSON types are refused (pydantic alone would coerce them), with the
failing element's path; real R4 examples round-trip; the HL7 invalid cases are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hdsapp.patients.fhir_json import FhirInvalid, parse
from hdsapp.patients.ins import (
    IdentityInvalid,
    identity_of,
    ins_key,
    valid_ins_value,
    with_ins_key,
)
from tests.conftest import TESTDATA

CASES = TESTDATA / "fhir-test-cases"
BASE: dict[str, Any] = {
    "resourceType": "Patient",
    "name": [{"family": "Durand", "given": ["Pierre"]}],
    "birthDate": "1974-12-25",
}


def _paths(data: dict[str, Any]) -> list[str]:
    with pytest.raises(FhirInvalid) as caught:
        parse("Patient", data)
    return [issue.path for issue in caught.value.issues]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"active": "true"}, "Patient.active"),
        ({"active": 1}, "Patient.active"),
        ({"multipleBirthInteger": "2"}, "Patient.multipleBirthInteger"),
        ({"multipleBirthInteger": True}, "Patient.multipleBirthInteger"),
        ({"deceasedBoolean": "false"}, "Patient.deceasedBoolean"),
        ({"name": [{"family": 12}]}, "Patient.name[0].family"),
        ({"name": [{"given": "Pierre"}]}, "Patient.name[0].given"),
        ({"name": {"family": "Durand"}}, "Patient.name"),
        ({"gender": "robot"}, "Patient.gender"),
        ({"gender": None}, "Patient.gender"),
        ({"identifier": []}, "Patient.identifier"),
        ({"identifier": [None]}, "Patient.identifier[0]"),
        ({"birthDate": "1974-13-25"}, "Patient.birthDate"),
        ({"birthDate": 1974}, "Patient.birthDate"),
        ({"telecom": [{"system": "phone", "value": 123}]}, "Patient.telecom[0].value"),
        (
            {"_birthDate": {"extension": [{"url": "urn:x", "valueBoolean": "true"}]}},
            "Patient._birthDate.extension[0].valueBoolean",
        ),
        (
            {"contained": [{"resourceType": "Organization", "active": "yes"}]},
            "Patient.contained[0].active",
        ),
        ({"unknownElement": 1}, "Patient.unknownElement"),
        ({"fhir_comments": "no comments in FHIR JSON"}, "Patient.fhir_comments"),
    ],
)
def test_wrong_json_types_are_refused_with_their_path(change: dict[str, Any], path: str) -> None:
    assert path in _paths({**BASE, **change})


def test_the_resource_type_must_match() -> None:
    assert _paths({**BASE, "resourceType": "Practitioner"}) == ["Patient.resourceType"]
    with pytest.raises(FhirInvalid):
        parse("Patient", [BASE])


def test_primitive_arrays_keep_their_nulls_aligned_with_extensions() -> None:
    data = {
        **BASE,
        "name": [{"family": "Chalmers", "given": [None, "James"], "_given": [{"id": "a"}, None]}],
    }
    assert parse("Patient", data).model_dump()["name"][0]["given"] == [None, "James"]


def _json_files(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("resourceType") == "Patient":
            found.append(path)
    return found


def _manifest() -> dict[str, dict[str, Any]]:
    entries = json.loads((CASES / "invalid" / "MANIFEST.fhir-test-cases.json").read_text())
    if isinstance(entries, dict):
        entries = entries.get("entries") or entries.get("files") or []
    return {entry["file"]: entry for entry in entries}


@pytest.mark.parametrize("path", _json_files(CASES / "valid"), ids=lambda p: p.name)
def test_valid_r4_patients_round_trip(path: Path) -> None:
    data = json.loads(path.read_text())
    if path.name == "pat-security-good2.json":
        # Valid only with the validator's security checks off; this server runs with them on.
        with pytest.raises(FhirInvalid):
            parse("Patient", data)
        return
    parsed = parse("Patient", data)
    again = parse("Patient", json.loads(parsed.model_dump_json()))
    assert again.model_dump() == parsed.model_dump()


# Needs the definition of an unknown extension (the HL7 validator looks it up): not a JSON rule.
NEEDS_PROFILES = {"pat-example-ext.json"}


@pytest.mark.parametrize("path", _json_files(CASES / "invalid"), ids=lambda p: p.name)
def test_invalid_r4_patients_are_refused(path: Path) -> None:
    if path.name in NEEDS_PROFILES:
        pytest.skip("needs the extension's StructureDefinition")
    with pytest.raises(FhirInvalid) as caught:
        parse("Patient", json.loads(path.read_text()))
    entry = _manifest().get(path.name, {})
    expected = json.loads((CASES / "invalid" / entry["expected_outcome_file"]).read_text())
    wanted = {e for issue in expected.get("issue", []) for e in issue.get("expression", [])}
    got = {issue.path for issue in caught.value.issues}
    # The same element as the reference validator, or one inside it (we point at the child).
    assert any(g == w or g.startswith((f"{w}.", f"{w}[")) for g in got for w in wanted), (
        got,
        wanted,
    )


# -- INS and identity status (FR Core) -----------------------------------------------------------

RELIABILITY = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
STATUS_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status"
TEST_INS = "urn:oid:1.2.250.1.213.1.4.10"


def fr_patient(
    status: str | None, ins: str | None = None, system: str = TEST_INS
) -> dict[str, Any]:
    data: dict[str, Any] = dict(BASE)
    if status is not None:
        data["extension"] = [
            {
                "url": RELIABILITY,
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": {"system": STATUS_SYSTEM, "code": status},
                    }
                ],
            }
        ]
    if ins is not None:
        data["identifier"] = [{"use": "official", "system": system, "value": ins}]
    return data


def test_ins_keys() -> None:
    assert ins_key("1800675123456") == 97 - 1800675123456 % 97
    assert valid_ins_value(with_ins_key("2930599123456"))
    corsica = with_ins_key("185022A123456")
    assert valid_ins_value(corsica)
    assert corsica[-2:] == f"{97 - 1850219123456 % 97:02d}"
    assert not valid_ins_value("123")


def test_a_qualified_identity_carries_its_ins() -> None:
    ins = with_ins_key("1740599123456")
    identity = identity_of(fr_patient("QUAL", ins))
    assert (identity.status, identity.ins_system, identity.ins_value) == ("QUAL", TEST_INS, ins)
    assert identity.family == "Durand"
    assert str(identity.birth_date) == "1974-12-25"


@pytest.mark.parametrize("status", ["PROV", "RECUP", "VALI"])
def test_the_ins_needs_a_qualified_identity(status: str) -> None:
    with pytest.raises(IdentityInvalid) as caught:
        identity_of(fr_patient(status, with_ins_key("1740599123456")))
    assert caught.value.code == "ins-requires-qualified-identity"
    assert identity_of(fr_patient(status)).ins_value is None


def test_identity_rules() -> None:
    with pytest.raises(IdentityInvalid):
        identity_of(fr_patient(None))
    with pytest.raises(IdentityInvalid):
        identity_of(fr_patient("SURE"))
    with pytest.raises(IdentityInvalid):
        identity_of(fr_patient("QUAL", "174059912345600"))  # wrong key
    two = fr_patient("QUAL", with_ins_key("1740599123456"))
    two["identifier"].append(
        {"use": "official", "system": TEST_INS, "value": with_ins_key("1740599123457")}
    )
    with pytest.raises(IdentityInvalid):
        identity_of(two)
    old = fr_patient("QUAL", with_ins_key("1740599123456"))
    old["identifier"].append(
        {"use": "old", "system": TEST_INS, "value": with_ins_key("1740599123457")}
    )
    assert identity_of(old).ins_value == with_ins_key("1740599123456")
    nameless = fr_patient("PROV")
    nameless["name"] = [{"given": ["Pierre"]}]
    with pytest.raises(IdentityInvalid):
        identity_of(nameless)
