"""Patients and oppositions of a care group (API.md, "Patients"). Thin: each route declares its
policy action and hands over to the service.

Oppositions are lifted with ``PATCH /api/v1/groups/{gid}/patients/{pid}/oppositions/{oid}``
and ``{"status": "inactive"}``: the record stays (who lifted it, when), so there is no DELETE.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from hdsapp.dependencies import ActorDep, DatabaseDep, KeyringDep, SessionDep, SettingsDep
from hdsapp.groups.endpoints import declares
from hdsapp.groups.pagination import DEFAULT_LIMIT, MAX_LIMIT
from hdsapp.patients import service
from hdsapp.patients.schemas import (
    OppositionCreate,
    OppositionList,
    OppositionPublic,
    OppositionUpdate,
    PatientList,
    PatientPublic,
)

router = APIRouter(prefix="/api/v1/groups/{gid}/patients", tags=["patients"])

Cursor = Annotated[str | None, Query(max_length=512)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
FHIR_PATIENT_EXAMPLE = {
    "resourceType": "Patient",
    "extension": [
        {
            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
            "extension": [
                {
                    "url": "identityStatus",
                    "valueCoding": {
                        "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status",
                        "code": "QUAL",
                    },
                }
            ],
        }
    ],
    "identifier": [
        {"use": "official", "system": "urn:oid:1.2.250.1.213.1.4.10", "value": "279035121518989"}
    ],
    "name": [{"use": "official", "family": "Martin", "given": ["Julie"]}],
    "gender": "female",
    "birthDate": "1979-03-15",
}


@router.post(
    "",
    status_code=201,
    response_model=PatientPublic,
    openapi_extra=declares("patient.create"),
    summary="Register a patient (FHIR R4 Patient, FR Core INS and identity status)",
)
def register_patient(
    *,
    gid: uuid.UUID,
    resource: Annotated[dict[str, Any], Body(examples=[FHIR_PATIENT_EXAMPLE])],
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> PatientPublic:
    return service.register_patient(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        group_id=gid,
        resource=resource,
    )


@router.get(
    "",
    response_model=PatientList,
    openapi_extra=declares("patient.search"),
    summary="Exact-match search: identifier=system|value (INS), or family and birthdate",
)
def search_patients(
    *,
    gid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
    identifier: Annotated[str | None, Query(max_length=256)] = None,
    family: Annotated[str | None, Query(max_length=200)] = None,
    birthdate: Annotated[str | None, Query(max_length=10)] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> PatientList:
    return service.search_patients(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        group_id=gid,
        identifier=identifier,
        family=family,
        birthdate=birthdate,
        cursor=cursor,
        limit=limit,
    )


@router.get("/{pid}", response_model=PatientPublic, openapi_extra=declares("patient.read"))
def get_patient(
    *,
    gid: uuid.UUID,
    pid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> PatientPublic:
    return service.get_patient(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        group_id=gid,
        patient_id=pid,
    )


@router.post(
    "/{pid}/oppositions",
    status_code=201,
    response_model=OppositionPublic,
    openapi_extra=declares("opposition.create"),
    summary="Record the patient's objection to sharing (FHIR Consent, deny)",
)
def record_opposition(
    *,
    gid: uuid.UUID,
    pid: uuid.UUID,
    body: OppositionCreate,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> OppositionPublic:
    return service.record_opposition(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        group_id=gid,
        patient_id=pid,
        request=body,
    )


@router.get(
    "/{pid}/oppositions",
    response_model=OppositionList,
    openapi_extra=declares("opposition.list"),
)
def list_oppositions(
    *,
    gid: uuid.UUID,
    pid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> OppositionList:
    return service.list_oppositions(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        group_id=gid,
        patient_id=pid,
        cursor=cursor,
        limit=limit,
    )


@router.patch(
    "/{pid}/oppositions/{oid}",
    response_model=OppositionPublic,
    openapi_extra=declares("opposition.lift"),
    summary='Lift an opposition: {"status": "inactive"}',
)
def lift_opposition(
    *,
    gid: uuid.UUID,
    pid: uuid.UUID,
    oid: uuid.UUID,
    body: OppositionUpdate,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> OppositionPublic:
    return service.lift_opposition(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        group_id=gid,
        patient_id=pid,
        opposition_id=oid,
        update=body,
    )
