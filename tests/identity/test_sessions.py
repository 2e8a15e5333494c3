"""Password + TOTP login, the session cookie, CSRF, rotation, timeouts, logout."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable
from http.cookies import SimpleCookie

from fastapi.testclient import TestClient

from hdsapp.core.db import Database
from tests.identity.conftest import (
    SESSION_COOKIE,
    Account,
    Browser,
    audit_events,
    browser_for,
    login,
    session_rows,
    set_cookie_names,
    shift_session,
)


def test_login_with_password_and_totp_sets_a_host_prefixed_cookie(
    client: TestClient, account: Account, database: Database
) -> None:
    response = login(client, account)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"csrf_token", "user"}
    assert body["user"]["email"] == account.email
    assert body["user"]["rpps"] == "10101010101"
    assert body["user"]["profession"] == {"code": "10", "label": "Médecin"}
    [header] = response.headers.get_list("set-cookie")
    cookie = SimpleCookie()
    cookie.load(header)
    morsel = cookie[SESSION_COOKIE]
    assert SESSION_COOKIE.startswith("__Host-")
    assert morsel["httponly"] is True
    assert morsel["secure"] is True
    assert morsel["samesite"].lower() == "lax"
    assert morsel["path"] == "/"
    assert not morsel["domain"]
    assert int(morsel["max-age"]) == 12 * 3600
    token = morsel.value
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 16  # >= 128 bits
    # Only the hash is stored.
    [row] = session_rows(database)
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(row)
    assert row["second_factor"] in (True, 1)
    assert row["method"] == "password"


def test_the_cookie_authenticates_and_me_describes_the_user(browser: Browser) -> None:
    response = browser.client.get("/api/v1/me")
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["id"] == str(browser.account.user_id)
    assert me["idnps"] == "810101010101"
    assert me["groups"] == []
    assert me["authentication"]["kind"] == "user"
    assert me["authentication"]["second_factor"] is True
    assert set(me["authentication"]["scopes"]) == {"read", "write", "audit"}
    session = browser.client.get("/api/v1/auth/session").json()
    assert session["csrf_token"] == browser.csrf
    assert session["method"] == "password"


def test_anonymous_me_is_401(client: TestClient) -> None:
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_login_rotates_the_session_id(
    client: TestClient, account: Account, database: Database
) -> None:
    first = browser_for(client, account)
    old = first.cookie
    second = browser_for(client, account)  # same browser, logs in again
    assert second.cookie != old
    assert second.csrf != first.csrf
    rows = {r["token_hash"]: r for r in session_rows(database)}
    old_row = rows[hashlib.sha256(old.encode()).hexdigest()]
    assert old_row["revoked_at"] is not None
    assert old_row["revoked_reason"] == "rotated"
    stale = TestClient(client.app, base_url="https://testserver", cookies={SESSION_COOKIE: old})
    assert stale.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me").status_code == 200


def test_csrf_token_is_required_on_unsafe_methods_with_the_cookie(browser: Browser) -> None:
    client = browser.client
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        response = client.post(
            "/api/v1/me/tokens", json={"name": "x", "scopes": ["read"]}, headers=headers
        )
        assert response.status_code == 403, response.text
        assert response.json()["type"].endswith("csrf-failed")
        assert client.post("/api/v1/auth/logout", headers=headers).status_code == 403
        tokens = client.get("/api/v1/me/tokens").json()["items"]
        assert tokens == []  # nothing created
    created = browser.unsafe("POST", "/api/v1/me/tokens", json={"name": "x", "scopes": ["read"]})
    assert created.status_code == 201, created.text
    assert client.get("/api/v1/me").status_code == 200  # safe methods need no token


def test_csrf_token_of_another_session_is_refused(
    browser: Browser, new_client: Callable[[], TestClient], make_account: Callable[..., Account]
) -> None:
    other = browser_for(new_client(), make_account())
    response = browser.client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": other.csrf})
    assert response.status_code == 403


def test_logout_revokes_server_side_and_clears_site_data(
    browser: Browser, database: Database
) -> None:
    cookie = browser.cookie
    response = browser.unsafe("POST", "/api/v1/auth/logout")
    assert response.status_code == 204
    assert response.headers["clear-site-data"] == '"cookies"'
    assert SESSION_COOKIE in set_cookie_names(response)
    [row] = session_rows(database)
    assert row["revoked_reason"] == "logout"
    replay = TestClient(browser.client.app, base_url="https://testserver")
    replay.cookies.set(SESSION_COOKIE, cookie)
    answer = replay.get("/api/v1/me")
    assert answer.status_code == 401
    assert answer.json()["type"].endswith("session-expired")
    logouts = audit_events(database, "logout")
    assert len(logouts) == 1
    assert logouts[0]["event"]["subtype"][0]["code"] == "110123"


def test_idle_timeout(browser: Browser, database: Database) -> None:
    [row] = session_rows(database)
    shift_session(database, str(row["id"]), last_seen_at=dt.timedelta(minutes=29))
    assert browser.client.get("/api/v1/me").status_code == 200  # and touched again
    shift_session(database, str(row["id"]), last_seen_at=dt.timedelta(minutes=31))
    response = browser.client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["type"].endswith("session-expired")


def test_absolute_timeout(browser: Browser, database: Database) -> None:
    [row] = session_rows(database)
    # Active all along (last seen now), but created more than 12 hours ago.
    shift_session(
        database,
        str(row["id"]),
        created_at=dt.timedelta(hours=12, seconds=1),
        expires_at=dt.timedelta(seconds=1),
    )
    assert browser.client.get("/api/v1/me").status_code == 401


def test_requests_keep_the_session_alive(browser: Browser, database: Database) -> None:
    [row] = session_rows(database)
    shift_session(database, str(row["id"]), last_seen_at=dt.timedelta(minutes=20))
    assert browser.client.get("/api/v1/me").status_code == 200
    [after] = session_rows(database)
    assert after["last_seen_at"] != row["last_seen_at"]
    shift_session(database, str(row["id"]), last_seen_at=dt.timedelta(minutes=20))
    assert browser.client.get("/api/v1/me").status_code == 200  # 40 minutes of activity


def test_garbage_cookie_is_401_and_cleared(client: TestClient) -> None:
    client.cookies.set(SESSION_COOKIE, "not-a-session")
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert SESSION_COOKIE in set_cookie_names(response)
