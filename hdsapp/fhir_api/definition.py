"""How a resource type module describes what it serves (``DEFINITION``), for the registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hdsapp.fhir_api.wire import Interaction

Code = Literal["read", "update", "create", "search-type"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Operation:
    """One interaction on a resource type: ``action`` is the policy action of the domain use
    case its handler calls (``also``: a second one it may call)."""

    code: Code
    action: str
    handler: Interaction
    also: tuple[str, ...] = ()
    documentation: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ResourceDef:
    """A resource type as this server serves it (the CapabilityStatement's rest.resource)."""

    type: str
    operations: tuple[Operation, ...]
    search: tuple[str, ...] = ()
    # Search parameters a search must carry (400 without them).
    required_search: tuple[str, ...] = ()
    documentation: str = ""
    profile: str | None = None
    supported_profiles: tuple[str, ...] = ()
    versioning: Literal["no-version", "versioned", "versioned-update"] = "versioned"
    conditional_create: bool = False
    # An artefact (``fhir/examples/...``) shown as the request body in the OpenAPI document.
    example: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def operation(self, code: Code) -> Operation | None:
        return next((op for op in self.operations if op.code == code), None)
