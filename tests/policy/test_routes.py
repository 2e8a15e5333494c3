"""Every route under /api/v1 declares its policy action, or the application does not start."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI

from hdsapp.app import check_route_actions
from hdsapp.policy import PUBLIC_ROUTE, load_table, route_action


def _app(**routes: dict[str, object] | None) -> FastAPI:
    app = FastAPI()
    router = APIRouter()
    for path, extra in routes.items():
        router.add_api_route(
            "/" + path.replace("__", "/"), lambda: None, methods=["GET"], openapi_extra=extra
        )
    app.include_router(router)
    return app


def test_a_route_without_an_action_stops_the_start() -> None:
    with pytest.raises(RuntimeError, match="api/v1/things"):
        check_route_actions(_app(api__v1__things=None))
    with pytest.raises(RuntimeError, match="no known policy action"):
        check_route_actions(_app(api__v1__things={"x-hds-action": "things.read"}))


def test_declared_public_and_identity_routes_start() -> None:
    check_route_actions(
        _app(
            api__v1__groups__x=route_action("group.read"),
            api__v1__status=dict(PUBLIC_ROUTE),
            api__v1__auth__login=None,
            api__v1__me=None,
            healthz=None,
        )
    )


def test_route_action_refuses_unknown_actions() -> None:
    with pytest.raises(ValueError, match="unknown policy action"):
        route_action("patient.delete")


def test_the_application_declares_an_action_on_every_route(app: FastAPI) -> None:
    document = app.openapi()
    actions = load_table().actions
    resources = {"group", "membership", "invitation", "patient", "opposition"}
    declared: set[str] = set()
    for path, operations in document["paths"].items():
        # The FHIR base declares the same actions as the use cases it calls (hdsapp.fhir_api).
        if not path.startswith(("/api/v1/groups", "/api/v1/invitations", "/fhir/")):
            continue
        for operation in operations.values():
            if "x-hds-action" in operation:
                names = [operation["x-hds-action"], *operation.get("x-hds-also", [])]
                declared.update(n for n in names if actions[n].resource.value in resources)
                assert operation.get("x-hds-audited") is True
    http = {
        name
        for name, spec in actions.items()
        if spec.resource.value in resources and not spec.http.startswith("cli")
    }
    assert declared == http
