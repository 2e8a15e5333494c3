"""No route reaches protected data without passing through the audit mechanism.

Every route of the app is one of:
- public (the allow-list PUBLIC below: liveness, readiness, the OpenAPI document, the PWA);
- outside the log by design (NOT_AUDITED, each with its reason);
- marked ``openapi_extra=hdsapp.core.accesslog.AUDITED_ROUTE`` (``{"x-hds-audited": True}``).

A new route that is none of these fails ``test_every_route_is_classified``. Each marked route is
then called, with parameters and a body built from the OpenAPI document (EXAMPLES overrides),
by a member of the care group, and must append exactly one entry to the log — whether the
call is allowed, refused (denials are entries too) or fails.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hdsapp.auditing.signing import create_signing_key
from hdsapp.config import Settings, required_secret_files
from hdsapp.core.accesslog import AUDITED_ROUTE
from hdsapp.core.actor import Actor, RequestInfo, Role, Scope
from hdsapp.core.db import Database, utcnow
from hdsapp.core.secrets import create_secret_file
from hdsapp.dependencies import get_actor
from hdsapp.models.audit_entry import AuditEntry

GROUP = uuid.UUID("00000000-0000-4000-8000-00000000a0a0")
MARKER = next(iter(AUDITED_ROUTE))

# Reachable without authentication and holding no protected data.
PUBLIC = frozenset(
    {
        "/healthz",
        "/readyz",
        "/api/openapi.json",
        "/",
        "/static",
        "/sw.js",
        "/manifest.webmanifest",
        # The FHIR CapabilityStatement: the same for every group and caller (hdsapp.fhir_api).
        "/fhir/{gid}/metadata",
    }
)
# Authenticated routes that are deliberately not entries, by path prefix, with the reason.
NOT_AUDITED: dict[str, str] = {
    "/api/v1/audit/": "checkpoints, proofs, verifier key: hashes only, no health data, no ids"
    " (hdsapp.auditing.service); a witness polling them must not grow the log it watches",
    "/api/v1/auth/": "authentication: identity records logins and their failures itself"
    " (record_separately), not per route",
    "/api/v1/me": "the caller's own account and tokens, no patient data",
}
# Request bodies and query strings the OpenAPI-based builder cannot guess, by "METHOD path".
EXAMPLES: dict[str, dict[str, Any]] = {
    "POST /api/v1/groups": {"json": {"name": "Test group", "coordinator": "someone@example.org"}},
    # The Organization of a FHIR base is its group (any other id: 404 before any use case).
    "GET /fhir/{gid}/Organization/{id}": {"url": f"/fhir/{GROUP}/Organization/{GROUP}"},
}


def routes(app: FastAPI) -> Iterator[tuple[str, str, Any]]:
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        methods = sorted(getattr(route, "methods", None) or {"*"})
        for method in methods:
            if method != "HEAD":
                yield method, context.path or "", route


def classify(path: str, route: Any) -> str:
    if path in PUBLIC:
        return "public"
    if any(path.startswith(prefix) for prefix in NOT_AUDITED):
        return "not-audited"
    if isinstance(route, APIRoute) and (route.openapi_extra or {}).get(MARKER) is True:
        return "audited"
    return "unclassified"


def test_every_route_is_classified(app: FastAPI) -> None:
    unclassified = [f"{m} {p}" for m, p, r in routes(app) if classify(p, r) == "unclassified"]
    assert unclassified == [], (
        "routes that neither pass through hdsapp.core.accesslog.audited (declare"
        " openapi_extra=AUDITED_ROUTE) nor are allow-listed in this test"
    )


def test_the_allow_lists_name_real_routes(app: FastAPI) -> None:
    paths = {p for _, p, _ in routes(app)}
    assert PUBLIC - {"/sw.js", "/manifest.webmanifest"} <= paths
    assert any(p.startswith("/api/v1/audit/") for p in paths)


# -- calling every audited route ------------------------------------------------------------------


def member() -> Actor:
    return Actor(
        kind="user",
        request=RequestInfo(request_id="route-walk-0001", client_ip="192.0.2.1", user_agent="t"),
        user_id=uuid.UUID("00000000-0000-4000-8000-00000000c0c0"),
        rpps="10000000001",
        memberships=MappingProxyType({GROUP: Role.CLINICIAN}),
        scopes=frozenset(Scope),
        authenticated_at=utcnow(),
        second_factor=True,
    )


class Examples:
    """Minimal valid values from the OpenAPI document's JSON schemas."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.components = document.get("components", {}).get("schemas", {})

    def value(self, schema: dict[str, Any], depth: int = 0) -> Any:
        if depth > 12:
            return None
        if "$ref" in schema:
            return self.value(self.components[schema["$ref"].rsplit("/", 1)[-1]], depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
                return self.value(options[0], depth + 1)
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                value = self.value(part, depth + 1)
                if isinstance(value, dict):
                    merged.update(value)
            return merged
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        if schema.get("examples"):
            return schema["examples"][0]
        return self._typed(schema, depth)

    def _typed(self, schema: dict[str, Any], depth: int) -> Any:
        kind = schema.get("type", "object")
        if kind == "object":
            properties = schema.get("properties", {})
            return {
                name: self.value(properties[name], depth + 1)
                for name in schema.get("required", [])
                if name in properties
            }
        if kind == "array":
            count = schema.get("minItems", 0)
            return [self.value(schema.get("items", {}), depth + 1) for _ in range(count)]
        if kind == "integer" or kind == "number":
            return schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
        if kind == "boolean":
            return False
        return self._string(schema)

    @staticmethod
    def _string(schema: dict[str, Any]) -> str:
        formats = {
            "uuid": str(uuid.uuid4()),
            "date-time": dt.datetime.now(dt.UTC).isoformat(),
            "date": "1970-01-01",
            "email": "someone@example.org",
            "uri": "https://example.org/x",
        }
        if schema.get("format") in formats:
            return formats[schema["format"]]
        if "@" in schema.get("pattern", ""):
            return formats["email"]
        length: int = schema.get("minLength", 1)
        return "x" * max(1, length)


def request_for(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    examples = Examples(document)
    operation = document["paths"][path][method.lower()]
    url = path
    query: dict[str, Any] = {}
    for parameter in operation.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        if where == "path":
            value = GROUP if name == "gid" else examples.value(parameter.get("schema", {}))
            url = url.replace("{" + name + "}", str(value))
        elif where == "query" and parameter.get("required"):
            query[name] = examples.value(parameter.get("schema", {}))
    request: dict[str, Any] = {"method": method, "url": url, "params": query}
    body = operation.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        request["json"] = examples.value(body["application/json"].get("schema", {}))
    elif "multipart/form-data" in body:
        request["files"] = {"file": ("note.txt", b"hello", "text/plain")}
    override = EXAMPLES.get(f"{method} {path}", {})
    return {**request, **override}


def initialise_secrets(settings: Settings) -> None:
    for path in required_secret_files(settings):
        create_secret_file(path)
    create_signing_key(settings)


def count_entries(database: Database) -> int:
    with database.session() as session:
        return int(session.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


def test_every_audited_route_appends_exactly_one_entry(
    app: FastAPI, client: TestClient, database: Database, settings: Settings
) -> None:
    # What `hdsapp init` creates (the root key the key store opens, the signing key), and
    # the key store the patients' tests use while hdsapp.core.crypto's is not wired in.
    initialise_secrets(settings)
    if getattr(app.state, "keyring", None) is None:
        from tests.patients.fake_keyring import FakeKeyring

        app.state.keyring = FakeKeyring()
    app.dependency_overrides[get_actor] = member
    document = app.openapi()
    audited = [(m, p) for m, p, r in routes(app) if classify(p, r) == "audited"]
    assert audited, "no audited route found"
    problems = []
    for method, path in audited:
        before = count_entries(database)
        request = request_for(document, method, path)
        response = client.request(**request)
        appended = count_entries(database) - before
        if response.status_code == 422:
            problems.append(
                f"{method} {path}: the generated request was refused (422); add an example to"
                f" EXAMPLES: {response.text[:300]}"
            )
        elif appended != 1:
            problems.append(
                f"{method} {path}: {appended} entries for one call"
                f" ({response.status_code} {response.text[:200]})"
            )
    app.dependency_overrides.clear()
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("path", sorted(NOT_AUDITED))
def test_not_audited_prefixes_are_narrow(path: str) -> None:
    # Every exemption is a namespace, not a catch-all.
    assert path.startswith("/api/v1/")
    assert path.count("/") >= 3
