"""Consent: a patient's opposition to sharing (provision ``deny``), over the oppositions of
``hdsapp.patients.service`` (policy ``opposition.create`` and ``opposition.list``). Served from
``opposition`` (and ``opposition_professional``), rendered by ``hdsapp.patients.consent``.

What a created Consent must say (anything else is refused, 422, naming the element):
- ``status`` active, ``patient`` a patient of the group (``Patient/{id}``);
- ``provision.type`` deny; ``provision.actor``: none (the whole group) or the members it names
  (``Practitioner/{user id}``); no narrower provision (data, class, code, purpose, an end to
  its period, nested provisions): an opposition covers all sharing about the patient until it
  is lifted;
- the prior information, extension ``urn:hdsapp:StructureDefinition/opposition-prior-information``
  with ``informedAt`` (when the patient was informed) and optionally ``informedBy``.
The rest (scope, category, policyRule...) is the server's: the Consent read back is the one
the server renders for the opposition, with its ``id``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pydantic

from hdsapp.core.errors import BadRequest, Unprocessable
from hdsapp.fhir_api.definition import Operation, ResourceDef
from hdsapp.fhir_api.search import parse_search, searchset
from hdsapp.fhir_api.wire import (
    FhirRequest,
    FhirResult,
    Services,
    parse_id,
    parse_resource,
    reference_id,
)
from hdsapp.patients import service as patients
from hdsapp.patients.consent import PRIOR_INFORMATION
from hdsapp.patients.fhir_json import FhirInvalid, parse
from hdsapp.patients.schemas import OppositionCreate, OppositionPublic

TYPE = "Consent"
NARROWING = (
    "securityLabel",
    "purpose",
    "class",
    "code",
    "dataPeriod",
    "data",
    "provision",
    "action",
)
# Where the opposition's fields come from in a Consent (for the service's 422s).
FIELD_PATHS = {
    "scope": "Consent.provision",
    "professionals": "Consent.provision.actor",
    "informed_by": "Consent.extension",
    "informed_at": "Consent.extension",
}


def result_of(
    opposition: OppositionPublic, *, status: int = 200, location: str | None = None
) -> FhirResult:
    return FhirResult(
        status=status,
        resource=opposition.resource,
        version=str(opposition.version),
        location=location,
    )


def read(services: Services, request: FhirRequest) -> FhirResult:
    opposition = patients.get_opposition(
        session=services.session,
        database=services.database,
        actor=services.actor,
        settings=services.settings,
        group_id=request.group_id,
        opposition_id=parse_id(request.id, TYPE),
    )
    return result_of(opposition)


def _invalid(problems: Sequence[tuple[str, str]]) -> Unprocessable:
    return Unprocessable(
        "The Consent is not an opposition this server records.",
        code="invalid-consent",
        extra={"errors": [{"path": path, "msg": msg} for path, msg in problems]},
    )


def _practitioner(reference: object, base: str) -> uuid.UUID | None:
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    try:
        return reference_id(reference["reference"], "Practitioner", base=base)
    except ValueError:
        return None


def _prior_information(
    resource: dict[str, Any], base: str, problems: list[tuple[str, str]]
) -> tuple[uuid.UUID | None, str | None]:
    found = [
        (i, e)
        for i, e in enumerate(resource.get("extension") or [])
        if e.get("url") == PRIOR_INFORMATION
    ]
    if len(found) != 1:
        problems.append(("Consent.extension", f"one extension {PRIOR_INFORMATION} is required"))
        return None, None
    index, extension = found[0]
    informed_by, informed_at = None, None
    for position, part in enumerate(extension.get("extension") or []):
        path = f"Consent.extension[{index}].extension[{position}]"
        if part.get("url") == "informedBy":
            informed_by = _practitioner(part.get("valueReference"), base)
            if informed_by is None:
                problems.append((path, "informedBy is a valueReference to a Practitioner"))
        elif part.get("url") == "informedAt":
            informed_at = part.get("valueDateTime")
            if not isinstance(informed_at, str) or "T" not in informed_at:
                problems.append((path, "informedAt is a valueDateTime with a time and zone"))
                informed_at = None
    if informed_at is None and not any(p[0].startswith("Consent.extension[") for p in problems):
        problems.append((f"Consent.extension[{index}]", "informedAt is required"))
    return informed_by, informed_at


def opposition_of(resource: dict[str, Any], base: str) -> tuple[uuid.UUID, OppositionCreate]:
    """The patient and the opposition a Consent describes (422 otherwise)."""
    try:
        parse(TYPE, resource)
    except FhirInvalid as exc:
        raise Unprocessable(
            "The FHIR Consent is not valid.",
            code="invalid-fhir",
            extra={"errors": [issue.as_dict() for issue in exc.issues]},
        ) from None
    problems: list[tuple[str, str]] = []
    if resource.get("status") != "active":
        problems.append(("Consent.status", "an opposition is recorded active"))
    patient_id = None
    patient = resource.get("patient")
    if isinstance(patient, dict) and isinstance(patient.get("reference"), str):
        try:
            patient_id = reference_id(patient["reference"], "Patient", base=base)
        except ValueError:
            patient_id = None
    if patient_id is None:
        problems.append(("Consent.patient", "a reference to a patient of the group"))
    provision = resource.get("provision")
    professionals: list[uuid.UUID] = []
    if not isinstance(provision, dict) or provision.get("type") != "deny":
        problems.append(("Consent.provision.type", "an opposition is a deny provision"))
    else:
        problems.extend(
            (f"Consent.provision.{name}", "an opposition covers all sharing about the patient")
            for name in NARROWING
            if name in provision
        )
        period = provision.get("period")
        if isinstance(period, dict) and "end" in period:
            # The server sets the start (when it is recorded); an end is lifting it.
            problems.append(("Consent.provision.period.end", "an opposition lasts until lifted"))
        for index, actor in enumerate(provision.get("actor") or []):
            member = _practitioner(actor.get("reference"), base)
            if member is None:
                problems.append(
                    (f"Consent.provision.actor[{index}].reference", "a Practitioner reference")
                )
            else:
                professionals.append(member)
    informed_by, informed_at = _prior_information(resource, base, problems)
    if problems:
        raise _invalid(problems)
    assert patient_id is not None
    assert informed_at is not None
    try:
        request = OppositionCreate.model_validate(
            {
                "scope": "professionals" if professionals else "group",
                "professionals": [str(p) for p in professionals],
                "informed_by": None if informed_by is None else str(informed_by),
                "informed_at": informed_at,
            }
        )
    except pydantic.ValidationError as exc:
        raise _invalid(
            [(FIELD_PATHS.get(str(e["loc"][0]), "Consent"), "not valid") for e in exc.errors()]
        ) from None
    return patient_id, request


def create(services: Services, request: FhirRequest) -> FhirResult:
    resource = parse_resource(request)
    patient_id, opposition = opposition_of(resource, request.base)
    try:
        created = patients.record_opposition(
            session=services.session,
            database=services.database,
            actor=services.actor,
            settings=services.settings,
            group_id=request.group_id,
            patient_id=patient_id,
            request=opposition,
        )
    except Unprocessable as exc:
        errors = [
            {**problem, "path": FIELD_PATHS.get(str(problem.get("path")), "Consent")}
            for problem in exc.extra.get("errors") or []
        ]
        raise Unprocessable(exc.detail, code=exc.code, extra={"errors": errors}) from None
    location = request.url(TYPE, str(created.id), "_history", str(created.version))
    return result_of(created, status=201, location=location)


def search_type(services: Services, request: FhirRequest) -> FhirResult:
    search = parse_search(request)
    value = search.get("patient")
    if value is None:
        raise BadRequest("Consent is searched by patient.", code="invalid-search")
    try:
        patient_id = reference_id(value, "Patient", base=request.base)
    except ValueError:
        raise BadRequest("patient takes Patient/{id}.", code="invalid-search") from None
    found = patients.list_oppositions(
        session=services.session,
        database=services.database,
        actor=services.actor,
        settings=services.settings,
        group_id=request.group_id,
        patient_id=patient_id,
        cursor=search.cursor,
        limit=search.count,
    )
    bundle = searchset(
        request,
        search,
        [(str(o.id), o.resource) for o in found.items],
        total=found.total,
        next_cursor=found.next_cursor,
    )
    return FhirResult(resource=bundle)


DEFINITION = ResourceDef(
    type=TYPE,
    documentation=(
        "A patient's opposition to sharing (CSP L.1110-4 III): provision deny, for the whole"
        " group or the members named as provision.actor; the prior information in the extension"
        f" {PRIOR_INFORMATION} (informedAt, informedBy). Lifting it is not offered here."
    ),
    example="examples/Consent-opposition.json",
    operations=(
        Operation(code="read", action="opposition.list", handler=read),
        Operation(code="create", action="opposition.create", handler=create),
        Operation(code="search-type", action="opposition.list", handler=search_type),
    ),
    search=("patient",),
    required_search=("patient",),
)
