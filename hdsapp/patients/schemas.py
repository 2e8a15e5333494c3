"""Request and response models of patients and oppositions.

The patient itself travels as FHIR R4 JSON (validated by ``fhir_json``); these models wrap it.
Requests are strict: unknown fields refused, JSON types not coerced.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field


def _json_string(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be a JSON string")
    return value


def _json_array(value: object) -> object:
    if not isinstance(value, list):
        raise ValueError("must be a JSON array")
    return value


JsonDatetime = Annotated[AwareDatetime, BeforeValidator(_json_string)]
JsonUuid = Annotated[uuid.UUID, BeforeValidator(_json_string)]
IdentityStatus = Literal["PROV", "RECUP", "VALI", "QUAL"]
OppositionScope = Literal["group", "professionals"]


class PatientPublic(BaseModel):
    id: uuid.UUID
    group_id: uuid.UUID
    identity_status: IdentityStatus
    active: bool
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    resource: dict[str, Any] = Field(description="the FHIR R4 Patient (id = this patient's id)")


class PatientList(BaseModel):
    items: list[PatientPublic]
    next_cursor: str | None
    total: int = Field(description="matching patients the caller may see")


class OppositionCreate(BaseModel):
    """A patient's objection to sharing, and the prior information they received.

    ``scope`` "group": no sharing about the patient in the group; "professionals": not with the
    members listed in ``professionals``. ``informed_by`` (default: the caller) informed the
    patient at ``informed_at`` (not in the future)."""

    model_config = ConfigDict(extra="forbid")

    scope: Annotated[OppositionScope, BeforeValidator(_json_string)]
    professionals: Annotated[list[JsonUuid], BeforeValidator(_json_array)] = Field(
        default_factory=list, max_length=100
    )
    informed_by: JsonUuid | None = None
    informed_at: JsonDatetime


class OppositionUpdate(BaseModel):
    """Lift an opposition: ``{"status": "inactive"}`` (the record stays, marked lifted)."""

    model_config = ConfigDict(extra="forbid")

    status: Annotated[Literal["inactive"], BeforeValidator(_json_string)]


class OppositionPublic(BaseModel):
    id: uuid.UUID
    group_id: uuid.UUID
    patient_id: uuid.UUID
    status: Literal["active", "inactive"]
    scope: OppositionScope
    professionals: list[uuid.UUID]
    informed_by: uuid.UUID
    informed_at: dt.datetime
    recorded_by: uuid.UUID
    recorded_at: dt.datetime
    lifted_by: uuid.UUID | None
    lifted_at: dt.datetime | None
    version: int
    resource: dict[str, Any] = Field(description="the FHIR R4 Consent (provision deny)")


class OppositionList(BaseModel):
    items: list[OppositionPublic]
    next_cursor: str | None
    total: int | None = Field(default=None, description="the patient's oppositions")
