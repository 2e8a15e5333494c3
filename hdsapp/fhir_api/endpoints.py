"""The FastAPI adapter of the FHIR base: one route per registered interaction, each declaring
its policy action (``x-hds-action``) and the audit marker; the request is handed as a
``FhirRequest`` to the framework-free interaction, its ``FhirResult`` rendered back.

Errors under ``/fhir`` — the services', this package's, and those FastAPI and Starlette answer
themselves (unknown path 404, method not allowed 405, validation) — are rendered as
OperationOutcomes by ``render_outcome``, registered for the prefix through
``error_renderers`` (``hdsapp.app`` collects them from the endpoints modules).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from hdsapp.core.accesslog import AUDITED_ROUTE
from hdsapp.core.errors import HdsError, MethodNotAllowed, NotFound
from hdsapp.dependencies import ActorDep, DatabaseDep, KeyringDep, SessionDep, SettingsDep
from hdsapp.fhir_api import artefacts
from hdsapp.fhir_api.capability import metadata
from hdsapp.fhir_api.definition import Operation, ResourceDef
from hdsapp.fhir_api.outcome import operation_outcome
from hdsapp.fhir_api.registry import Registered, registry
from hdsapp.fhir_api.wire import (
    FHIR_JSON,
    FhirRequest,
    FhirResult,
    SearchParam,
    Services,
    check_format,
    dumps,
    render,
)
from hdsapp.policy import PUBLIC_ROUTE, route_action

PREFIX = "/fhir"
# The id the OpenAPI document shows as an example (and the route walker of the tests uses).
EXAMPLE_ID = "00000000-0000-4000-8000-00000000f41d"

router = APIRouter(prefix=PREFIX, tags=["FHIR R4"])

Gid = Annotated[str, Path(description="the care group (its FHIR base)")]
ResourceId = Annotated[str, Path(description="logical id", examples=[EXAMPLE_ID])]


async def _body(request: Request) -> bytes:
    return await request.body()


BodyDep = Annotated[bytes, Depends(_body)]


def _group(gid: str) -> uuid.UUID:
    try:
        return uuid.UUID(gid)
    except ValueError:
        raise NotFound("No such care group.") from None


def fhir_request(
    request: Request,
    gid: str,
    *,
    resource_type: str | None,
    resource_id: str | None,
    body: bytes,
    search_params: tuple[SearchParam, ...] = (),
) -> FhirRequest:
    base = str(request.base_url).rstrip("/") + f"{PREFIX}/{gid}"
    return FhirRequest(
        method=request.method,
        base=base,
        group_id=_group(gid),
        resource_type=resource_type,
        id=resource_id,
        params=tuple(request.query_params.multi_items()),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        search_params=search_params,
    )


def response(request: FhirRequest, result: FhirResult) -> Response:
    status, headers, body = render(request, result)
    return Response(content=body, status_code=status, headers=headers)


@router.get("/{gid}/metadata", openapi_extra=dict(PUBLIC_ROUTE), summary="CapabilityStatement")
def get_metadata(request: Request, gid: Gid) -> Response:
    fhir = fhir_request(request, gid, resource_type=None, resource_id=None, body=b"")
    check_format(fhir)
    return response(fhir, metadata(fhir))


def _declaration(entry: Registered, operation: Operation) -> dict[str, Any]:
    definition = entry.definition
    extra: dict[str, Any] = {**AUDITED_ROUTE, **route_action(operation.action, *operation.also)}
    if operation.code == "search-type":
        extra["parameters"] = [
            {
                "name": param.name,
                "in": "query",
                "required": param.name in definition.required_search,
                "description": param.documentation,
                "schema": {"type": "string", **_search_example(param)},
            }
            for param in entry.search_params
        ] + [
            {"name": "_count", "in": "query", "required": False, "schema": {"type": "integer"}},
            {"name": "_cursor", "in": "query", "required": False, "schema": {"type": "string"}},
        ]
    if operation.code in {"create", "update"}:
        example = _example(definition, with_id=operation.code == "update")
        schema = {"type": "object", "examples": [example]} if example else {"type": "object"}
        extra["requestBody"] = {
            "required": True,
            "content": {FHIR_JSON: {"schema": schema}, "application/json": {"schema": schema}},
        }
    return extra


def _search_example(param: SearchParam) -> dict[str, Any]:
    if param.type == "reference":
        target = {"patient": "Patient", "thread": "CareTeam"}.get(param.name, "Practitioner")
        return {"examples": [f"{target}/{EXAMPLE_ID}"]}
    return {}


def _example(definition: ResourceDef, *, with_id: bool) -> dict[str, Any] | None:
    if not definition.example:
        return None
    example = copy.deepcopy(artefacts.read(definition.example))
    example.pop("meta", None)
    if with_id:
        example["id"] = EXAMPLE_ID
    else:
        example.pop("id", None)
    return example


def _type_endpoint(entry: Registered, operation: Operation) -> Callable[..., Response]:
    resource_type = entry.definition.type

    def endpoint(
        *,
        request: Request,
        gid: Gid,
        session: SessionDep,
        database: DatabaseDep,
        actor: ActorDep,
        settings: SettingsDep,
        keyring: KeyringDep,
        body: BodyDep,
    ) -> Response:
        fhir = fhir_request(
            request,
            gid,
            resource_type=resource_type,
            resource_id=None,
            body=body,
            search_params=entry.search_params,
        )
        check_format(fhir)
        services = Services(
            session=session, database=database, actor=actor, settings=settings, keyring=keyring
        )
        return response(fhir, operation.handler(services, fhir))

    return endpoint


def _instance_endpoint(entry: Registered, operation: Operation) -> Callable[..., Response]:
    resource_type = entry.definition.type

    def endpoint(
        *,
        request: Request,
        gid: Gid,
        id: ResourceId,
        session: SessionDep,
        database: DatabaseDep,
        actor: ActorDep,
        settings: SettingsDep,
        keyring: KeyringDep,
        body: BodyDep,
    ) -> Response:
        fhir = fhir_request(
            request,
            gid,
            resource_type=resource_type,
            resource_id=id,
            body=body,
            search_params=entry.search_params,
        )
        check_format(fhir)
        services = Services(
            session=session, database=database, actor=actor, settings=settings, keyring=keyring
        )
        return response(fhir, operation.handler(services, fhir))

    return endpoint


_ROUTES = {
    "read": ("GET", True),
    "update": ("PUT", True),
    "create": ("POST", False),
    "search-type": ("GET", False),
}


def _register(target: APIRouter) -> None:
    for name, entry in sorted(registry().items()):
        for operation in entry.definition.operations:
            method, instance = _ROUTES[operation.code]
            path = f"/{{gid}}/{name}/{{id}}" if instance else f"/{{gid}}/{name}"
            make = _instance_endpoint if instance else _type_endpoint
            target.add_api_route(
                path,
                make(entry, operation),
                methods=[method],
                openapi_extra=_declaration(entry, operation),
                summary=f"{name}: {operation.code}",
                name=f"fhir_{name}_{operation.code}",
                response_class=Response,
            )


_register(router)


def _served_type(path: str) -> str | None:
    """The registered type named by ``/fhir/{gid}/{type}`` or ``/fhir/{gid}/{type}/{id}``."""
    parts = path.removeprefix(PREFIX + "/").split("/")
    if len(parts) in {2, 3} and parts[1] in registry() and all(parts):
        return parts[1]
    return None


def render_outcome(request: Request, error: HdsError) -> Response:
    """An error under /fhir as an OperationOutcome, with the error's status and headers.

    The router's own 404 (no route: a plain ``HdsError``, not a use case's ``NotFound``) on a
    served type's path is an interaction this server does not support: 405."""
    if type(error) is HdsError and error.status == 404:
        resource_type = _served_type(request.url.path)
        if resource_type is not None:
            error = MethodNotAllowed(
                f"This interaction on {resource_type} is not supported (see the"
                " CapabilityStatement).",
                code="interaction-not-supported",
            )
    headers = dict(error.headers)
    headers["content-type"] = f"{FHIR_JSON}; charset=utf-8"
    return Response(
        content=dumps(operation_outcome(error)), status_code=error.status, headers=headers
    )


# Collected by hdsapp.app.create_app into app.state.error_renderers.
error_renderers = [(PREFIX + "/", render_outcome)]
