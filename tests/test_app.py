"""The HTTP baseline every route shares: errors, headers, request ids, body limits."""

import json
import uuid
from collections.abc import Iterator

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from hdsapp.core.errors import Conflict
from hdsapp.core.http import CONTENT_SECURITY_POLICY

PROBLEM = "application/problem+json"


class Ping(BaseModel):
    name: str
    count: int


@pytest.fixture
def probe_client(app: FastAPI) -> TestClient:
    """The app plus routes that exercise the error paths no real route reaches on purpose."""
    router = APIRouter(prefix="/api/v1/_probe")

    @router.post("")
    def echo(body: Ping) -> Ping:
        return body

    @router.get("/conflict")
    def conflict() -> None:
        raise Conflict("Already there.", extra={"existing": "Patient/1"})

    @router.get("/crash")
    def crash() -> None:
        raise RuntimeError("Mrs Dupont, INS 2 84 12 75 118 124 53")

    app.include_router(router)
    return TestClient(app, base_url="https://testserver")


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_document_is_served_and_no_cdn_docs(client: TestClient) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "hdsapp"
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404


def test_security_headers_on_every_response(client: TestClient) -> None:
    for path in ("/", "/healthz", "/api/nothing-here"):
        headers = client.get(path).headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["strict-transport-security"].startswith("max-age=")
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_api_responses_are_not_stored(client: TestClient) -> None:
    assert client.get("/api/openapi.json").headers["cache-control"] == "no-store"
    assert client.get("/").headers["cache-control"] != "no-store"


def test_request_id_generated_or_accepted(client: TestClient) -> None:
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    mine = uuid.uuid4().hex
    assert client.get("/healthz", headers={"X-Request-ID": mine}).headers["x-request-id"] == mine
    evil = "abc\r\nset-cookie"
    echoed = client.get("/healthz", headers={"X-Request-ID": "short"}).headers["x-request-id"]
    assert echoed not in {"short", evil}


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    response = client.get("/api/v1/nothing")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 404
    assert body["type"] == "urn:hdsapp:problem:not-found"
    assert body["request_id"] == response.headers["x-request-id"]


def test_wrong_method_is_a_problem(client: TestClient) -> None:
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM


def test_malformed_json_is_400(probe_client: TestClient) -> None:
    response = probe_client.post(
        "/api/v1/_probe", content=b'{"name": "x",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["type"] == "urn:hdsapp:problem:malformed-json"


def test_invalid_body_is_422_without_echoing_input(probe_client: TestClient) -> None:
    response = probe_client.post("/api/v1/_probe", json={"name": "Dupont Jeanne", "count": "x"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["errors"][0]["loc"] == ["body", "count"]
    assert "Dupont" not in response.text


def test_domain_errors_carry_their_extra_fields(probe_client: TestClient) -> None:
    response = probe_client.get("/api/v1/_probe/conflict")
    assert response.status_code == 409
    assert response.json()["existing"] == "Patient/1"


def test_unexpected_error_is_500_without_details(
    probe_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = probe_client.get("/api/v1/_probe/crash")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert "Dupont" not in response.text
    assert "Dupont" not in caplog.text
    record = next(r for r in caplog.records if r.getMessage() == "unhandled error")
    assert record.__dict__["error"] == "RuntimeError"
    assert "Dupont" not in str(record.__dict__["trace"])
    assert any("in crash" in frame for frame in record.__dict__["trace"])


def test_declared_oversized_body_is_413(probe_client: TestClient) -> None:
    body = json.dumps({"name": "x" * 2_000_000, "count": 1})
    response = probe_client.post(
        "/api/v1/_probe", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["limit"] == 1024 * 1024


def test_streamed_oversized_body_is_413(probe_client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    response = probe_client.post(
        "/api/v1/_probe", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_untrusted_host_is_refused(client: TestClient) -> None:
    response = client.get("/healthz", headers={"host": "evil.example"})
    assert response.status_code == 400
    assert "x-request-id" in response.headers


def test_access_log_has_no_query_string(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="hdsapp.access")
    client.get("/api/v1/nothing?family=Dupont&birthdate=1950-01-01")
    record = next(r for r in caplog.records if r.name == "hdsapp.access")
    assert record.__dict__["path"] == "/api/v1/nothing"
    assert "Dupont" not in caplog.text
