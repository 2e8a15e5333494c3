"""An opposition as a FHIR R4 Consent: the patient's objection to sharing (provision deny).

- ``status`` active while in force, inactive once lifted (``provision.period.end`` = when);
- ``scope`` patient-privacy, ``category`` LOINC 59284-0 (patient consent), ``policyRule``
  v3-ActCode OPTOUT (CSP L.1110-4 III: the patient objects to the exchange and sharing);
- ``patient`` and ``performer`` the patient (who decided), ``organization`` the care group;
- ``provision.actor``: none when the objection covers the whole group, else the professionals
  it names (role IRCP, ``Practitioner/{user id}``);
- extensions ``urn:hdsapp:StructureDefinition/opposition-prior-information`` (``informedBy``,
  ``informedAt``: who informed the patient and when), ``.../opposition-recorded-by`` and
  ``.../opposition-lifted-by`` (who recorded and who lifted it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, Final

PRIOR_INFORMATION: Final = "urn:hdsapp:StructureDefinition/opposition-prior-information"
RECORDED_BY: Final = "urn:hdsapp:StructureDefinition/opposition-recorded-by"
LIFTED_BY: Final = "urn:hdsapp:StructureDefinition/opposition-lifted-by"


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _practitioner(user_id: uuid.UUID) -> dict[str, str]:
    return {"reference": f"Practitioner/{user_id}"}


def consent_resource(
    *,
    opposition_id: uuid.UUID,
    group_id: uuid.UUID,
    patient_id: uuid.UUID,
    status: str,
    scope: str,
    professionals: Sequence[uuid.UUID],
    informed_by: uuid.UUID,
    informed_at: dt.datetime,
    recorded_by: uuid.UUID,
    recorded_at: dt.datetime,
    lifted_by: uuid.UUID | None,
    lifted_at: dt.datetime | None,
    version: int,
) -> dict[str, Any]:
    patient = {"reference": f"Patient/{patient_id}"}
    extensions: list[dict[str, Any]] = [
        {
            "url": PRIOR_INFORMATION,
            "extension": [
                {"url": "informedBy", "valueReference": _practitioner(informed_by)},
                {"url": "informedAt", "valueDateTime": _instant(informed_at)},
            ],
        },
        {"url": RECORDED_BY, "valueReference": _practitioner(recorded_by)},
    ]
    if lifted_by is not None:
        extensions.append({"url": LIFTED_BY, "valueReference": _practitioner(lifted_by)})
    period: dict[str, str] = {"start": _instant(recorded_at)}
    if lifted_at is not None:
        period["end"] = _instant(lifted_at)
    provision: dict[str, Any] = {"type": "deny", "period": period}
    if scope == "professionals":
        provision["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                            "display": "information recipient",
                        }
                    ]
                },
                "reference": _practitioner(user_id),
            }
            for user_id in professionals
        ]
    return {
        "resourceType": "Consent",
        "id": str(opposition_id),
        "meta": {"versionId": str(version)},
        "extension": extensions,
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                    "display": "Privacy Consent",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}
                ]
            }
        ],
        "patient": patient,
        "dateTime": _instant(recorded_at),
        "performer": [patient],
        "organization": [{"reference": f"Organization/{group_id}"}],
        "policyRule": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "OPTOUT",
                    "display": "opt-out",
                }
            ],
            "text": "CSP L.1110-4 III: objection to the exchange and sharing of health data",
        },
        "provision": provision,
    }
