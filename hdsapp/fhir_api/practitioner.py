"""Practitioner: the group's members (not removed), read and searched over
``hdsapp.groups.service`` (policy ``member.list``). Served from ``membership`` joined with
``user_account``: the user id is the Practitioner id; identifiers RPPS and IDNPS.

A member's name is searched by words of the display name: they are not encrypted, so the
filter runs on the group's members, every one of them visible to whoever may list them.
"""

from __future__ import annotations

import uuid
from typing import Any

from hdsapp.core.errors import BadRequest, Unprocessable
from hdsapp.fhir_api.definition import Operation, ResourceDef
from hdsapp.fhir_api.search import parse_search, searchset
from hdsapp.fhir_api.wire import FhirRequest, FhirResult, Services, parse_id
from hdsapp.groups import service as groups
from hdsapp.groups.schemas import MemberPublic

TYPE = "Practitioner"
RPPS = "http://rpps.esante.gouv.fr"
# The national directory's earlier system for the RPPS number, still in its published samples.
RPPS_LEGACY = "http://rpps.fr"
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"
IDENTIFIER_TYPES = "http://interopsante.org/CodeSystem/v2-0203"
PROFESSION = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"


def _identifier(system: str, code: str, value: str) -> dict[str, Any]:
    return {
        "use": "official",
        "type": {"coding": [{"system": IDENTIFIER_TYPES, "code": code}]},
        "system": system,
        "value": value,
    }


def practitioner_resource(member: MemberPublic) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": TYPE, "id": str(member.user_id)}
    identifiers = []
    if member.idnps:
        identifiers.append(_identifier(IDNPS, "IDNPS", member.idnps))
    if member.rpps:
        identifiers.append(_identifier(RPPS, "RPPS", member.rpps))
    if identifiers:
        resource["identifier"] = identifiers
    resource["active"] = member.status == "active" and not member.expired
    resource["name"] = [{"text": member.display_name}]
    if member.profession:
        resource["qualification"] = [
            {"code": {"coding": [{"system": PROFESSION, "code": member.profession}]}}
        ]
    return resource


def read(services: Services, request: FhirRequest) -> FhirResult:
    member = groups.get_member(
        session=services.session,
        database=services.database,
        actor=services.actor,
        settings=services.settings,
        group_id=request.group_id,
        user_id=parse_id(request.id, TYPE),
    )
    return FhirResult(resource=practitioner_resource(member))


def search_type(services: Services, request: FhirRequest) -> FhirResult:
    search = parse_search(request)
    criteria: dict[str, Any] = {}
    value = search.get("_id")
    if value is not None:
        try:
            criteria["user_ids"] = [uuid.UUID(value)]
        except ValueError:
            criteria["user_ids"] = []
    value = search.get("identifier")
    if value is not None:
        system, separator, number = value.partition("|")
        if not separator:
            criteria["practitioner_id"] = value
        elif system in {RPPS, RPPS_LEGACY}:
            criteria["rpps"] = number
        elif system == IDNPS:
            criteria["idnps"] = number
        else:
            criteria["user_ids"] = []  # no member has an identifier of another system
    try:
        found = groups.search_members(
            session=services.session,
            database=services.database,
            actor=services.actor,
            settings=services.settings,
            group_id=request.group_id,
            name=search.get("name"),
            cursor=search.cursor,
            limit=search.count,
            **criteria,
        )
    except Unprocessable as exc:
        if exc.code != "invalid-search":
            raise
        raise BadRequest(exc.detail, code=exc.code, extra=exc.extra) from None
    bundle = searchset(
        request,
        search,
        [(str(m.user_id), practitioner_resource(m)) for m in found.items],
        total=found.total,
        next_cursor=found.next_cursor,
    )
    return FhirResult(resource=bundle)


DEFINITION = ResourceDef(
    type=TYPE,
    documentation=(
        "The care group's members (removed members excepted): id = user id; RPPS"
        f" ({RPPS}) and IDNPS ({IDNPS}) identifiers; active while the membership holds."
    ),
    versioning="no-version",
    operations=(
        Operation(code="read", action="member.list", handler=read),
        Operation(code="search-type", action="member.list", handler=search_type),
    ),
    search=("_id", "identifier", "name"),
)
