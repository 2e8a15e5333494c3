"""FR Core Patients for the tests (test INS identifiers, urn:oid:1.2.250.1.213.1.4.10)."""

from __future__ import annotations

import itertools
from typing import Any

from hdsapp.patients.ins import (
    IDENTITY_RELIABILITY_URL,
    IDENTITY_STATUS_SYSTEM,
    INS_NIR_TEST,
    with_ins_key,
)

_serial = itertools.count(100)


def new_ins() -> str:
    """A fresh, well-formed test INS value (sex, year, month, department, commune, order)."""
    n = next(_serial)
    return with_ins_key(f"2790375{n % 1000:03d}{n // 1000 % 1000:03d}")


def fr_patient(
    family: str = "Martin",
    given: str = "Julie",
    birth_date: str = "1979-03-15",
    *,
    status: str | None = "QUAL",
    ins: str | None = None,
    system: str = INS_NIR_TEST,
) -> dict[str, Any]:
    data: dict[str, Any] = {"resourceType": "Patient"}
    if status is not None:
        data["extension"] = [
            {
                "url": IDENTITY_RELIABILITY_URL,
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": {"system": IDENTITY_STATUS_SYSTEM, "code": status},
                    }
                ],
            }
        ]
    if ins is not None:
        data["identifier"] = [
            {
                "use": "official",
                "type": {
                    "coding": [
                        {
                            "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203",
                            "code": "INS-NIR-TEST",
                        }
                    ]
                },
                "system": system,
                "value": ins,
            }
        ]
    data["name"] = [{"use": "official", "family": family, "given": [given]}]
    data["gender"] = "female"
    data["birthDate"] = birth_date
    return data
