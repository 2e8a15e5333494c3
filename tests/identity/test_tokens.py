"""Personal access tokens: scoped, expiring, revocable, last use recorded, stored hashed."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hdsapp.core.db import Database
from tests.identity.conftest import Browser, audit_events, execute, rows


def create(browser: Browser, **body: Any) -> dict[str, Any]:
    payload = {"name": "script", "scopes": ["read", "write"], **body}
    response = browser.unsafe("POST", "/api/v1/me/tokens", json=payload)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def script(new_client: Callable[[], TestClient]) -> TestClient:
    """A client without cookies, as a script would be."""
    return new_client()


def test_a_token_is_shown_once_and_stored_hashed(browser: Browser, database: Database) -> None:
    created = create(browser, expires_in="1h")
    token = created["token"]
    assert token.startswith("hds_pat_")
    assert len(token) == len("hds_pat_") + 43  # 256 bits
    assert created["scopes"] == ["read", "write"]
    assert created["state"] == "active"
    expires = dt.datetime.fromisoformat(created["expires_at"])
    created_at = dt.datetime.fromisoformat(created["created_at"])
    assert expires - created_at == dt.timedelta(hours=1)
    [row] = rows(database, "SELECT * FROM personal_access_token")
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(row)
    assert created["prefix"] == token[:12]
    listed = browser.client.get("/api/v1/me/tokens").json()["items"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0]


def test_bearer_authenticates_without_csrf_and_records_last_use(
    browser: Browser, script: TestClient, database: Database
) -> None:
    created = create(browser)
    assert (
        rows(database, "SELECT last_used_at FROM personal_access_token")[0]["last_used_at"] is None
    )
    me = script.get("/api/v1/me", headers=bearer(created["token"]))
    assert me.status_code == 200, me.text
    auth = me.json()["authentication"]
    assert auth["kind"] == "token"
    assert auth["token_id"] == created["id"]
    assert auth["scopes"] == ["read", "write"]
    assert auth["authenticated_at"] is None  # a token never satisfies step-up
    assert rows(database, "SELECT last_used_at FROM personal_access_token")[0]["last_used_at"]
    # Unsafe method, no CSRF header: fine with a bearer token.
    other = create(browser, name="other")
    deleted = script.delete(f"/api/v1/me/tokens/{other['id']}", headers=bearer(created["token"]))
    assert deleted.status_code == 204


def test_scopes_limit_what_a_token_can_do(browser: Browser, script: TestClient) -> None:
    read_only = create(browser, scopes=["read"])["token"]
    assert script.get("/api/v1/me", headers=bearer(read_only)).status_code == 200
    refused = script.delete(f"/api/v1/me/tokens/{uuid.uuid4()}", headers=bearer(read_only))
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("insufficient-scope")
    audit_only = create(browser, scopes=["audit"])["token"]
    assert script.get("/api/v1/me", headers=bearer(audit_only)).status_code == 403


def test_a_token_cannot_mint_tokens(browser: Browser, script: TestClient) -> None:
    token = create(browser)["token"]
    response = script.post(
        "/api/v1/me/tokens", json={"name": "x", "scopes": ["read"]}, headers=bearer(token)
    )
    assert response.status_code == 403
    assert response.json()["type"].endswith("session-required")


def test_expired_and_revoked_tokens_are_401(
    browser: Browser, script: TestClient, database: Database
) -> None:
    expiring, revoked = create(browser, name="a"), create(browser, name="b")
    assert script.get("/api/v1/me", headers=bearer(expiring["token"])).status_code == 200
    execute(
        database,
        "UPDATE personal_access_token SET expires_at = created_at WHERE id = :id",
        id=expiring["id"] if database.backend == "postgresql" else uuid.UUID(expiring["id"]).hex,
    )
    gone = script.get("/api/v1/me", headers=bearer(expiring["token"]))
    assert gone.status_code == 401
    assert gone.json()["type"].endswith("invalid-token")
    assert browser.unsafe("DELETE", f"/api/v1/me/tokens/{revoked['id']}").status_code == 204
    assert script.get("/api/v1/me", headers=bearer(revoked["token"])).status_code == 401
    states = {
        t["name"]: t["state"] for t in browser.client.get("/api/v1/me/tokens").json()["items"]
    }
    assert states == {"a": "expired", "b": "revoked"}
    # Revoking again is harmless; someone else's token is not found.
    assert browser.unsafe("DELETE", f"/api/v1/me/tokens/{revoked['id']}").status_code == 204
    assert browser.unsafe("DELETE", f"/api/v1/me/tokens/{uuid.uuid4()}").status_code == 404


@pytest.mark.parametrize(
    "header",
    ["Bearer hds_pat_unknown", "Bearer " + "hds_pat_" + "A" * 43, "Basic abc", "Bearer"],
)
def test_bad_bearer_tokens_are_401(script: TestClient, header: str) -> None:
    response = script.get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert "www-authenticate" in response.headers


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": ["admin"]},
        {"name": "x", "scopes": []},
        {"name": "", "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "expires_in": "forever"},
        {"name": "x", "scopes": ["read"], "expires_in": "400d"},
        {"name": "x", "scopes": ["read"], "expires_in": 5},
    ],
)
def test_bad_token_requests_are_422(browser: Browser, database: Database, body: Any) -> None:
    response = browser.unsafe("POST", "/api/v1/me/tokens", json=body)
    assert response.status_code == 422, response.text
    assert rows(database, "SELECT * FROM personal_access_token") == []


def test_token_creation_and_revocation_are_audited(browser: Browser, database: Database) -> None:
    created = create(browser)
    browser.unsafe("DELETE", f"/api/v1/me/tokens/{created['id']}")
    events = audit_events(database, "token")
    assert [e["action"] for e in events] == ["C", "D"]
    assert all(e["outcome"] == 0 for e in events)
    reference = events[0]["event"]["entity"][0]["what"]["reference"]
    assert reference == f"PersonalAccessToken/{created['id']}"
    assert created["token"] not in str(events)


def test_bearer_wins_over_the_cookie(browser: Browser) -> None:
    token = create(browser, scopes=["read"])["token"]
    me = browser.client.get("/api/v1/me", headers=bearer(token)).json()
    assert me["authentication"]["kind"] == "token"
