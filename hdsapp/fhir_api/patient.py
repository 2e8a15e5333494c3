"""Patient: read, search, create (conditional with ``If-None-Exist``), update (``If-Match``),
over ``hdsapp.patients.service`` — the same use cases, policy actions and audit entries as
``/api/v1/groups/{gid}/patients``.

Served from the ``patient`` table: the identity is the sealed FHIR Patient JSON as it was sent
(only ``id`` and ``meta`` are the server's), opened by the service and served as stored, never
re-validated on the read path. Search goes through the blind indexes (an identifier, or family
name and birth date); ``given`` narrows an indexed search down (see the SearchParameter
artefacts and SECURITY.md, "FHIR API").
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from hdsapp.core.crypto.blind_index import normalize_ins_system, normalize_ins_value
from hdsapp.core.errors import BadRequest, Conflict, Unprocessable
from hdsapp.fhir_api.definition import Operation, ResourceDef
from hdsapp.fhir_api.search import Search, ids, parse_search, searchset
from hdsapp.fhir_api.wire import (
    FhirRequest,
    FhirResult,
    PreconditionFailed,
    Services,
    if_match,
    parse_id,
    parse_resource,
)
from hdsapp.patients import service as patients
from hdsapp.patients.ins import INS_SYSTEMS
from hdsapp.patients.schemas import PatientPublic

TYPE = "Patient"
FR_CORE_PATIENT = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"
FR_CORE_PATIENT_INS = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"


def result_of(
    public: PatientPublic, *, status: int = 200, location: str | None = None
) -> FhirResult:
    resource = public.resource
    return FhirResult(
        status=status,
        resource=resource,
        version=str(public.version),
        last_updated=str(resource["meta"]["lastUpdated"]),
        location=location,
    )


def read(services: Services, request: FhirRequest) -> FhirResult:
    public = patients.get_patient(
        **services.args(),
        group_id=request.group_id,
        patient_id=parse_id(request.id, TYPE),
    )
    return result_of(public)


def create(services: Services, request: FhirRequest) -> FhirResult:
    resource = parse_resource(request)
    condition = request.header("if-none-exist")
    if condition is not None:
        _check_condition(condition, resource)
    try:
        public = patients.register_patient(
            **services.args(),
            group_id=request.group_id,
            resource=resource,
        )
    except Conflict as exc:
        existing = exc.extra.get("patient_id")
        if condition is None or exc.code != "duplicate-ins" or existing is None:
            raise
        # Conditional create, one match: nothing is created (FHIR: 200). The existing
        # patient is named, not returned: reading it is a read of its own (patient.read).
        message = "A patient with this INS exists in the group: nothing was created."
        return FhirResult(
            status=200,
            resource={
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "information", "code": "duplicate", "diagnostics": message}],
            },
            location=request.url(TYPE, str(existing)),
            message=message,
        )
    return result_of(
        public,
        status=201,
        location=request.url(TYPE, str(public.id), "_history", str(public.version)),
    )


def _check_condition(condition: str, resource: dict[str, Any]) -> None:
    """``If-None-Exist`` is supported as the resource's own INS: ``identifier=<INS system>|<INS>``
    (the one-INS-per-group rule then decides). Any other criteria: 412."""
    try:
        pairs = parse_qsl(condition, strict_parsing=True, keep_blank_values=True)
    except ValueError:
        pairs = []
    supported = PreconditionFailed(
        "If-None-Exist is supported as identifier=<INS system>|<value>, the resource's INS.",
        code="conditional-create-not-supported",
    )
    if len(pairs) != 1 or pairs[0][0] != "identifier":
        raise supported
    system, separator, value = pairs[0][1].partition("|")
    if not separator or system not in INS_SYSTEMS or not value.strip():
        raise supported
    try:
        wanted = (normalize_ins_system(system), normalize_ins_value(value))
    except ValueError:
        raise supported from None
    for identifier in resource.get("identifier") or []:
        if not isinstance(identifier, dict):
            continue
        their_system, their_value = identifier.get("system"), identifier.get("value")
        if isinstance(their_system, str) and isinstance(their_value, str):
            try:
                theirs = (normalize_ins_system(their_system), normalize_ins_value(their_value))
            except ValueError:
                continue
            if theirs == wanted:
                return
    raise supported


def update(services: Services, request: FhirRequest) -> FhirResult:
    patient_id = parse_id(request.id, TYPE)
    resource = parse_resource(request)
    if resource.get("id") != request.id:
        raise BadRequest("The resource's id must be the id in the URL.", code="id-mismatch")
    public = patients.update_patient(
        **services.args(),
        group_id=request.group_id,
        patient_id=patient_id,
        resource=resource,
        expected_version=if_match(request),
    )
    return result_of(public)


def _birthdate(search: Search) -> str | None:
    value = search.get("birthdate")
    if value is None:
        return None
    if value.startswith("eq"):
        value = value[2:]
    if value[:2].isalpha():
        raise BadRequest(
            "birthdate is searched for one full date (YYYY-MM-DD or eqYYYY-MM-DD).",
            code="invalid-search",
        )
    return value


def search_type(services: Services, request: FhirRequest) -> FhirResult:
    search = parse_search(request)
    try:
        found = patients.search_patients(
            **services.args(),
            group_id=request.group_id,
            identifier=search.get("identifier"),
            family=search.get("family"),
            birthdate=_birthdate(search),
            given=search.get("given"),
            ids=ids(search),
            cursor=search.cursor,
            limit=search.count,
        )
    except Unprocessable as exc:
        if exc.code != "invalid-search":
            raise
        # A search the server cannot run is a bad request in FHIR (400), not a bad resource.
        raise BadRequest(exc.detail, code=exc.code, extra=exc.extra) from None
    bundle = searchset(
        request,
        search,
        [(str(item.id), item.resource) for item in found.items],
        total=found.total,
        next_cursor=found.next_cursor,
    )
    return FhirResult(resource=bundle)


DEFINITION = ResourceDef(
    type=TYPE,
    documentation=(
        "The group's patients (FR Core identity: reliability status PROV, RECUP, VALI or QUAL;"
        " an INS only with a qualified identity). Clinicians of the group; an opposition that"
        " covers the caller hides the patient."
    ),
    supported_profiles=(FR_CORE_PATIENT, FR_CORE_PATIENT_INS),
    versioning="versioned-update",
    conditional_create=True,
    example="examples/Patient-ins-qualified.json",
    operations=(
        Operation(code="read", action="patient.read", handler=read),
        Operation(
            code="update",
            action="patient.update",
            handler=update,
            documentation='A new version; If-Match: W/"<versionId>" answers 412 if stale.',
        ),
        Operation(
            code="create",
            action="patient.create",
            handler=create,
            documentation=(
                "If-None-Exist: identifier=<INS system>|<INS> (the resource's own INS) answers"
                " 200 without creating when the group already has that INS."
            ),
        ),
        Operation(code="search-type", action="patient.search", handler=search_type),
    ),
    search=("_id", "identifier", "family", "given", "birthdate"),
)
