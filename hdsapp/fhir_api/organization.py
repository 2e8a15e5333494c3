"""Organization: the care group itself — the one Organization of its base, read only, over
``hdsapp.groups.service.get_group`` (policy ``group.read``). Served from ``care_group``."""

from __future__ import annotations

from typing import Any

from hdsapp.core.errors import NotFound
from hdsapp.fhir_api.definition import Operation, ResourceDef
from hdsapp.fhir_api.wire import FhirRequest, FhirResult, Services, instant, parse_id
from hdsapp.groups import service as groups
from hdsapp.groups.schemas import GroupPublic

TYPE = "Organization"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"


def organization_resource(group: GroupPublic) -> dict[str, Any]:
    return {
        "resourceType": TYPE,
        "id": str(group.id),
        "meta": {"lastUpdated": instant(group.updated_at or group.created_at)},
        "active": True,
        "type": [
            {
                "coding": [
                    {"system": ORGANIZATION_TYPE, "code": "team", "display": "Organizational team"}
                ],
                "text": "care group",
            }
        ],
        "name": group.name,
    }


def read(services: Services, request: FhirRequest) -> FhirResult:
    if parse_id(request.id, TYPE) != request.group_id:
        # Each base is one group: another group is not an Organization of this base.
        raise NotFound("No such Organization.")
    group = groups.get_group(
        session=services.session,
        database=services.database,
        actor=services.actor,
        settings=services.settings,
        group_id=request.group_id,
    )
    resource = organization_resource(group)
    return FhirResult(resource=resource, last_updated=resource["meta"]["lastUpdated"])


DEFINITION = ResourceDef(
    type=TYPE,
    documentation="The care group of this base (Organization/{group id}), for its members.",
    versioning="no-version",
    operations=(Operation(code="read", action="group.read", handler=read),),
)
