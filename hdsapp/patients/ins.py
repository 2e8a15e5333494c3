"""The French identity rules of a registered patient (FR Core, INS, RNIV), over validated FHIR.

Representation chosen (FR Core, ``fr-core-patient-ins``):

- identity reliability status: the extension
  ``https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability`` with its
  sub-extension ``identityStatus`` whose ``valueCoding`` is in the code system
  ``https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status``: PROV (provisional),
  RECUP (retrieved from the INSi teleservice), VALI (validated against an identity document),
  QUAL (qualified: retrieved and validated). Exactly one status is required.
- INS: an ``identifier`` whose ``system`` is INS-NIR ``urn:oid:1.2.250.1.213.1.4.8``, INS-NIA
  ``urn:oid:1.2.250.1.213.1.4.9``, test INS-NIR ``urn:oid:1.2.250.1.213.1.4.10`` or demo INS-NIR
  ``urn:oid:1.2.250.1.213.1.4.11`` (FR Core slices INS-NIR, INS-NIA, INS-NIR-TEST,
  INS-NIR-DEMO; the identifier ``type`` from ``fr-core-cs-v2-0203`` is optional here). The INS
  may only be carried when the identity is qualified (QUAL): otherwise 422. At most one INS
  that is not ``use: old``. Its value has 15 characters (13 + a key, Corsica 2A/2B) and a
  valid key (97 - NIR mod 97).
- traits used for search: the official name's family (else the first name with a family) and
  a full birth date.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hdsapp.patients.fhir_json import Issue

IDENTITY_RELIABILITY_URL: Final = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
)
IDENTITY_STATUS_SYSTEM: Final = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status"
IDENTITY_STATUSES: Final = ("PROV", "RECUP", "VALI", "QUAL")
QUALIFIED: Final = "QUAL"

INS_NIR: Final = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIA: Final = "urn:oid:1.2.250.1.213.1.4.9"
INS_NIR_TEST: Final = "urn:oid:1.2.250.1.213.1.4.10"
INS_NIR_DEMO: Final = "urn:oid:1.2.250.1.213.1.4.11"
INS_SYSTEMS: Final = (INS_NIR, INS_NIA, INS_NIR_TEST, INS_NIR_DEMO)
IDENTIFIER_TYPE_SYSTEM: Final = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
INS_TYPE_CODES: Final = {
    INS_NIR: "INS-NIR",
    INS_NIA: "INS-NIA",
    INS_NIR_TEST: "INS-NIR-TEST",
    INS_NIR_DEMO: "INS-NIR-DEMO",
}

_INS_VALUE = re.compile(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}")
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True, slots=True)
class Identity:
    """What the service indexes and stores in clear about a patient (no identity trait)."""

    status: str
    ins_system: str | None
    ins_value: str | None
    family: str | None
    birth_date: dt.date | None


class IdentityInvalid(Exception):
    def __init__(self, issues: list[Issue], *, code: str = "invalid-identity") -> None:
        super().__init__(f"{len(issues)} problem(s)")
        self.issues = issues
        self.code = code


def ins_key(first13: str) -> int:
    """The NIR key: 97 - (the 13 digits mod 97), Corsica 2A -> 19, 2B -> 18."""
    corsica = {"2A": "19", "2B": "18"}.get(first13[5:7])
    digits = first13[:5] + corsica + first13[7:] if corsica else first13
    return 97 - int(digits) % 97


def valid_ins_value(value: str) -> bool:
    return bool(_INS_VALUE.fullmatch(value)) and ins_key(value[:13]) == int(value[13:])


def with_ins_key(first13: str) -> str:
    """A full INS value from its 13 first characters (test data)."""
    return f"{first13}{ins_key(first13):02d}"


def identity_of(patient: Mapping[str, Any]) -> Identity:
    """The identity rules over a Patient already validated by ``fhir_json.parse``."""
    issues: list[Issue] = []
    status = _status(patient, issues)
    ins = _ins(patient, issues)
    if ins is not None and status is not None and status != QUALIFIED:
        raise IdentityInvalid(
            [
                Issue(
                    "Patient.identifier",
                    "an INS (matricule) may only be carried by a qualified identity (QUAL)",
                )
            ],
            code="ins-requires-qualified-identity",
        )
    family = _family(patient)
    if family is None:
        issues.append(Issue("Patient.name", "a name with a family name is required"))
    birth = patient.get("birthDate")
    if not isinstance(birth, str):
        issues.append(Issue("Patient.birthDate", "is required"))
    if issues:
        raise IdentityInvalid(issues)
    assert status is not None
    assert isinstance(birth, str)
    birth_date = dt.date.fromisoformat(birth) if _FULL_DATE.fullmatch(birth) else None
    return Identity(
        status=status,
        ins_system=ins[0] if ins else None,
        ins_value=ins[1] if ins else None,
        family=family,
        birth_date=birth_date,
    )


def _status(patient: Mapping[str, Any], issues: list[Issue]) -> str | None:
    where = "Patient.extension"
    found = [
        (i, e)
        for i, e in enumerate(patient.get("extension") or [])
        if e.get("url") == IDENTITY_RELIABILITY_URL
    ]
    if len(found) != 1:
        issues.append(Issue(where, f"exactly one extension {IDENTITY_RELIABILITY_URL} is required"))
        return None
    index, reliability = found[0]
    where = f"{where}[{index}]"
    statuses = [
        (i, e)
        for i, e in enumerate(reliability.get("extension") or [])
        if e.get("url") == "identityStatus"
    ]
    if len(statuses) != 1:
        issues.append(Issue(f"{where}.extension", "exactly one identityStatus is required"))
        return None
    position, status = statuses[0]
    coding = status.get("valueCoding")
    path = f"{where}.extension[{position}].valueCoding"
    if not isinstance(coding, dict):
        issues.append(Issue(path, "identityStatus is a valueCoding"))
        return None
    if coding.get("system") != IDENTITY_STATUS_SYSTEM or coding.get("code") not in (
        IDENTITY_STATUSES
    ):
        issues.append(Issue(path, f"must be {IDENTITY_STATUS_SYSTEM} PROV, RECUP, VALI or QUAL"))
        return None
    return str(coding["code"])


def _ins(patient: Mapping[str, Any], issues: list[Issue]) -> tuple[str, str] | None:
    current: list[tuple[int, str, str]] = []
    for index, identifier in enumerate(patient.get("identifier") or []):
        system = identifier.get("system")
        if system not in INS_SYSTEMS:
            continue
        value = identifier.get("value")
        path = f"Patient.identifier[{index}]"
        if not isinstance(value, str) or not valid_ins_value(value):
            issues.append(Issue(f"{path}.value", "an INS has 15 characters and a valid key"))
            continue
        if identifier.get("use") != "old":
            current.append((index, system, value))
    if len(current) > 1:
        issues.append(Issue("Patient.identifier", "at most one current INS"))
        return None
    if not current:
        return None
    _, system, value = current[0]
    return system, value


def _family(patient: Mapping[str, Any]) -> str | None:
    names = [n for n in patient.get("name") or [] if isinstance(n.get("family"), str)]
    official = [n for n in names if n.get("use") == "official"]
    chosen = (official or names or [None])[0]
    if chosen is None:
        return None
    family = str(chosen["family"]).strip()
    return family or None
