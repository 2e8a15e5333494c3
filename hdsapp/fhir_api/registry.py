"""What the FHIR base serves: resource types, their interactions (each with the policy action
of the domain use case it calls) and their search parameters.

The adapter (``endpoints``) makes one route per registered interaction, declaring its action
as every route does (``x-hds-action``); ``capability`` describes exactly this registry. A search
parameter is served only if the type's module handles it *and* its definition is in
``fhir/SearchParameter/`` (checked when the registry is built: a definition nobody handles, or
a handled parameter without a definition, stops the start-up).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hdsapp.fhir_api import (
    artefacts,
    audit_event,
    care_team,
    communication,
    consent,
    organization,
    patient,
    practitioner,
    task,
)
from hdsapp.fhir_api.definition import ResourceDef
from hdsapp.fhir_api.wire import SearchParam


@dataclass(frozen=True, kw_only=True, slots=True)
class Registered:
    definition: ResourceDef
    search_params: tuple[SearchParam, ...]


class RegistryError(RuntimeError):
    pass


def definitions() -> Sequence[ResourceDef]:
    return [
        patient.DEFINITION,
        practitioner.DEFINITION,
        organization.DEFINITION,
        consent.DEFINITION,
        audit_event.DEFINITION,
        care_team.DEFINITION,
        communication.DEFINITION,
        task.DEFINITION,
    ]


def build(
    definitions: Sequence[ResourceDef], parameters: Sequence[Mapping[str, Any]]
) -> dict[str, Registered]:
    """Join the definitions with the SearchParameter artefacts; refuse any mismatch."""
    by_base: dict[tuple[str, str], Mapping[str, Any]] = {}
    for parameter in parameters:
        for base in parameter.get("base", []):
            key = (str(base), str(parameter["code"]))
            if key in by_base:
                raise RegistryError(f"two SearchParameters for {base}?{parameter['code']}")
            by_base[key] = parameter
    registry: dict[str, Registered] = {}
    for definition in definitions:
        params = []
        for name in definition.search:
            artefact = by_base.pop((definition.type, name), None)
            if artefact is None:
                raise RegistryError(f"no SearchParameter artefact for {definition.type}?{name}")
            params.append(
                SearchParam(
                    name=name,
                    type=str(artefact["type"]),
                    modifiers=frozenset(artefact.get("modifier", [])),
                    definition=str(artefact["url"]),
                    documentation=str(artefact.get("description", "")),
                    repeatable=artefact.get("multipleAnd") is True,
                )
            )
        registry[definition.type] = Registered(definition=definition, search_params=tuple(params))
    if by_base:
        unused = ", ".join(f"{base}?{code}" for base, code in sorted(by_base))
        raise RegistryError(f"SearchParameter artefacts no resource type handles: {unused}")
    return registry


@functools.cache
def registry() -> dict[str, Registered]:
    return build(definitions(), artefacts.search_parameters())
