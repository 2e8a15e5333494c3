"""``GET /fhir/{gid}/metadata``: the CapabilityStatement, from the base artefact
(``fhir/CapabilityStatement-base.json``) and what the registry actually serves (types,
interactions, search parameters).

The same for every group and every caller, holding nothing about either: it is public, as
FHIR clients (and SMART) expect, and it is not an access to protected data.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

from hdsapp.fhir_api import artefacts
from hdsapp.fhir_api.registry import Registered, registry
from hdsapp.fhir_api.wire import FHIR_VERSION, FhirRequest, FhirResult

SEARCH_PARAM_DOC = {
    "_count": "Page size, at most 100 (default 50).",
    "_cursor": "Opaque: the next page, as given by the Bundle's next link.",
}


def _resource(entry: Registered) -> dict[str, Any]:
    definition = entry.definition
    resource: dict[str, Any] = {"type": definition.type}
    if definition.profile:
        resource["profile"] = definition.profile
    if definition.supported_profiles:
        resource["supportedProfile"] = list(definition.supported_profiles)
    if definition.documentation:
        resource["documentation"] = definition.documentation
    resource["interaction"] = [
        {"code": op.code, **({"documentation": op.documentation} if op.documentation else {})}
        for op in definition.operations
    ]
    resource["versioning"] = definition.versioning
    resource["readHistory"] = False
    resource["updateCreate"] = False
    resource["conditionalCreate"] = definition.conditional_create
    resource["conditionalRead"] = "not-supported"
    resource["conditionalUpdate"] = False
    resource["conditionalDelete"] = "not-supported"
    if entry.search_params:
        resource["searchParam"] = [
            {
                "name": param.name,
                "definition": param.definition,
                "type": param.type,
                "documentation": param.documentation,
            }
            for param in entry.search_params
        ]
    resource.update(definition.extra)
    return resource


def build_capability(base: Mapping[str, Any], served: Mapping[str, Registered]) -> dict[str, Any]:
    statement = copy.deepcopy(dict(base))
    statement["fhirVersion"] = FHIR_VERSION
    rest = statement["rest"][0]
    rest["resource"] = [_resource(served[name]) for name in sorted(served)]
    return statement


@functools.cache
def _statement() -> dict[str, Any]:
    return build_capability(artefacts.read(artefacts.BASE_CAPABILITY), registry())


def capability_statement() -> dict[str, Any]:
    return copy.deepcopy(_statement())


def metadata(request: FhirRequest) -> FhirResult:
    statement = capability_statement()
    statement["implementation"] = {
        "description": "hdsapp: the FHIR base of one care group",
        "url": request.base,
    }
    return FhirResult(resource=statement)
