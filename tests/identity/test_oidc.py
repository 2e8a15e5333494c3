"""Pro Santé Connect login end to end, against a real OpenID provider (tests/support/oidc.py).

Every refusal must leave no session: no ``auth_session`` row and no session cookie.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from hdsapp.app import create_app
from hdsapp.core.actor import system_actor
from hdsapp.core.db import Database, utcnow
from hdsapp.identity import service
from tests.conftest import make_settings
from tests.identity.conftest import (
    SESSION_COOKIE,
    audit_events,
    execute,
    rows,
    session_rows,
    set_cookie_names,
)
from tests.support.oidc import RunningProvider, start_oidc_provider

CLIENT_ID = "hdsapp-identity-tests"
CLIENT_SECRET = "identity-secret-" + "z" * 32
PUBLIC_URL = "https://testserver"
CALLBACK = f"{PUBLIC_URL}/api/v1/auth/oidc/psc/callback"
PSC_REALM = "/auth/realms/esante-wallet"
ALLOWED = ["10", "21", "40", "50", "60", "70"]


@pytest.fixture(scope="module")
def op() -> Iterator[RunningProvider]:
    with start_oidc_provider(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[CALLBACK]
    ) as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset(op: RunningProvider) -> None:
    op.reset()


def provider_settings(op: RunningProvider, **overrides: Any) -> dict[str, Any]:
    return {
        "profile": "psc",
        "issuer": op.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "allowed_professions": ALLOWED,
        **overrides,
    }


@pytest.fixture
def make_client(
    tmp_path: Path, database_url: str, database: Database
) -> Iterator[Callable[..., TestClient]]:
    opened: list[TestClient] = []

    def make(op: RunningProvider, **overrides: Any) -> TestClient:
        settings = make_settings(
            tmp_path,
            database_url=database_url,
            public_url=PUBLIC_URL,
            oidc_providers=json.dumps({"psc": provider_settings(op, **overrides)}),
        )
        client = TestClient(create_app(settings, database), base_url=PUBLIC_URL)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(op: RunningProvider, make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(op)


def start(client: TestClient) -> str:
    """GET …/login: the provider's authorization URL (and the pre-auth cookie is set)."""
    response = client.get("/api/v1/auth/oidc/psc/login", follow_redirects=False)
    assert response.status_code == 302, response.text
    assert "__Host-hds_oidc" in set_cookie_names(response)
    return str(response.headers["location"])


def callback(client: TestClient, url: str) -> Any:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK
    return client.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def full_login(client: TestClient, op: RunningProvider, account: str = "doctor") -> Any:
    return callback(client, op.authorize(start(client), account=account))


def assert_refused(response: Any, database: Database, reason: str | None = None) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["type"].endswith("oidc-login-failed")
    assert SESSION_COOKIE not in set_cookie_names(response)
    assert session_rows(database) == []
    if reason is not None:
        last = audit_events(database, "login")[-1]
        assert last["outcome"] == 4
        assert last["event"]["outcomeDesc"] == f"oidc:psc:{reason}"


# -- the happy path --------------------------------------------------------------------------


def test_psc_login_creates_a_session_and_an_active_user(
    client: TestClient, op: RunningProvider, database: Database
) -> None:
    authorization = start(client)
    query = parse_qs(urlsplit(authorization).query)
    assert authorization.startswith(op.metadata()["authorization_endpoint"])
    assert query["scope"] == ["openid scope_all"]
    assert query["acr_values"] == ["eidas1"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [CALLBACK]
    assert "nonce" in query
    assert "state" in query
    # Nothing but the binding cookie leaves: state, nonce and verifier stay server-side.
    cookie = client.cookies.get("__Host-hds_oidc")
    assert cookie
    assert cookie not in authorization
    [pending] = rows(database, "SELECT * FROM oidc_login_state")
    assert pending["state"] == query["state"][0]
    assert pending["code_verifier"] not in authorization

    response = callback(client, op.authorize(authorization, account="doctor"))
    assert response.status_code == 302, response.text
    assert response.headers["location"] == "/"
    assert SESSION_COOKIE in set_cookie_names(response)
    me = client.get("/api/v1/me").json()
    doctor = op.accounts["doctor"]
    assert me["idnps"] == doctor.subject_name_id
    assert me["rpps"] == "99700218896"
    assert me["profession"]["code"] == "10"
    assert me["display_name"] == "Paul MEDECIN-TEST"
    assert me["status"] == "active"
    assert me["email"] is None  # never taken as a key, and PSC gives none here
    assert me["authentication"]["second_factor"] is True  # eidas1: no TOTP needed
    [row] = session_rows(database)
    assert row["method"] == "oidc"
    assert row["provider"] == "psc"
    [identity] = rows(database, "SELECT * FROM oidc_identity")
    assert identity["subject"] == doctor.subject_name_id  # SubjectNameID, not sub
    session = client.get("/api/v1/auth/session").json()
    assert session["method"] == "oidc"
    assert session["csrf_token"]
    [login] = audit_events(database, "login")
    assert login["outcome"] == 0
    assert login["event"]["outcomeDesc"] == "oidc:psc:eidas1"


def test_second_login_finds_the_same_user(
    client: TestClient, op: RunningProvider, make_client: Callable[..., TestClient]
) -> None:
    assert full_login(client, op, "nurse").status_code == 302
    first = client.get("/api/v1/me").json()
    other = make_client(op)
    assert full_login(other, op, "nurse").status_code == 302
    assert other.get("/api/v1/me").json()["id"] == first["id"]
    assert first["profession"]["code"] == "60"


def test_first_login_links_the_user_invited_by_rpps(
    client: TestClient, op: RunningProvider, database: Database
) -> None:
    with database.unit_of_work() as session:
        invited = service.create_user(
            session=session,
            actor=system_actor(),
            email="claire@cabinet.example",
            display_name="Claire",
            password=None,
            rpps="99700367917",
            now=utcnow(),
        ).user
    assert invited.status == "invited"
    assert full_login(client, op, "nurse").status_code == 302
    me = client.get("/api/v1/me").json()
    assert me["id"] == str(invited.id)
    assert me["email"] == "claire@cabinet.example"
    assert me["status"] == "active"
    assert me["profession"]["code"] == "60"  # filled from the directory


def test_a_suspended_linked_user_is_refused(
    client: TestClient,
    op: RunningProvider,
    database: Database,
    make_client: Callable[..., TestClient],
) -> None:
    assert full_login(client, op, "doctor").status_code == 302
    execute(database, "UPDATE user_account SET status = 'suspended'")
    execute(database, "DELETE FROM auth_session")
    assert client.get("/api/v1/me").status_code == 401
    assert_refused(full_login(make_client(op), op, "doctor"), database, "status:suspended")


def test_without_user_creation_only_invited_users_get_in(
    op: RunningProvider, make_client: Callable[..., TestClient], database: Database
) -> None:
    client = make_client(op, create_users=False)
    assert_refused(full_login(client, op, "pharmacist"), database, "not-invited")
    assert rows(database, "SELECT * FROM user_account") == []


def test_first_allowed_profession_is_kept(client: TestClient, op: RunningProvider) -> None:
    # "multi" exercises 99 (not allowed) then 10.
    assert full_login(client, op, "multi").status_code == 302
    assert client.get("/api/v1/me").json()["profession"]["code"] == "10"


def test_login_rotates_an_existing_session(
    client: TestClient, op: RunningProvider, database: Database
) -> None:
    assert full_login(client, op, "doctor").status_code == 302
    first = client.cookies.get(SESSION_COOKIE)
    assert full_login(client, op, "doctor").status_code == 302
    assert client.cookies.get(SESSION_COOKIE) != first
    reasons = sorted(str(r["revoked_reason"]) for r in session_rows(database))
    assert reasons == ["None", "rotated"]


def test_issuer_with_a_path(make_client: Callable[..., TestClient], database: Database) -> None:
    with start_oidc_provider(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[CALLBACK],
        issuer_path=PSC_REALM,
    ) as realm:
        assert realm.issuer.endswith(PSC_REALM)
        client = make_client(realm)
        response = full_login(client, realm, "pharmacist")
        assert response.status_code == 302, response.text
        assert client.get("/api/v1/me").json()["profession"]["code"] == "21"


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("wrong_issuer", "issuer"),
        ("wrong_audience", "audience"),
        ("expired", "time"),
        ("issued_in_future", "time"),
        ("alg_none", "signature"),
        ("hs256_with_public_key", "signature"),
        ("unknown_kid", "signature"),
        ("nonce_mismatch", "nonce"),
        ("missing_acr", "acr"),
        ("wrong_acr", "acr"),
        ("es256_published_key", "signature"),
        ("userinfo_wrong_sub", "userinfo"),
    ],
)
def test_tampered_responses_are_refused(
    client: TestClient, op: RunningProvider, database: Database, mode: str, reason: str
) -> None:
    op.control(mode)
    response = full_login(client, op, "doctor")
    assert op.control_state()["applied"] == [mode]
    assert_refused(response, database, reason)
    assert rows(database, "SELECT * FROM user_account") == []


def test_a_profession_outside_the_list_is_refused(
    client: TestClient, op: RunningProvider, database: Database
) -> None:
    assert_refused(full_login(client, op, "other"), database, "profession")


def test_replayed_callback_is_refused(
    client: TestClient,
    op: RunningProvider,
    database: Database,
    make_client: Callable[..., TestClient],
) -> None:
    url = op.authorize(start(client), account="doctor")
    # Another browser (no pre-auth cookie) cannot use it.
    assert_refused(callback(make_client(op), url), database, "state")
    assert callback(client, url).status_code == 302
    [session] = session_rows(database)
    replay = callback(client, url)  # same browser, same state and code again
    assert replay.status_code == 401
    assert SESSION_COOKIE not in set_cookie_names(replay)
    assert session_rows(database) == [session]


def test_replayed_code_is_refused(
    client: TestClient, op: RunningProvider, database: Database
) -> None:
    used = op.authorize(start(client), account="doctor")
    assert callback(client, used).status_code == 302
    execute(database, "DELETE FROM auth_session")
    client.cookies.clear()
    # A new login of this browser, answered with the old code: the provider refuses it.
    fresh = parse_qs(urlsplit(start(client)).query)
    old = parse_qs(urlsplit(used).query)
    forged = f"{CALLBACK}?code={old['code'][0]}&state={fresh['state'][0]}&iss={op.issuer}"
    assert_refused(callback(client, forged), database, "token")


def test_a_wrong_state_is_refused(
    client: TestClient, op: RunningProvider, database: Database
) -> None:
    url = op.authorize(start(client), account="doctor")
    query = parse_qs(urlsplit(url).query)
    forged = f"{CALLBACK}?code={query['code'][0]}&state=forged&iss={op.issuer}"
    assert_refused(callback(client, forged), database, "state")
    # The pending login is spent: the genuine answer does not work afterwards either.
    assert_refused(callback(client, url), database, "state")


def test_a_mixed_up_issuer_parameter_is_refused(
    client: TestClient, op: RunningProvider, database: Database
) -> None:
    url = op.authorize(start(client), account="doctor")
    assert_refused(
        callback(client, url.replace("iss=", "iss=https%3A%2F%2Fevil.example&x=")),
        database,
        "issuer",
    )


def test_provider_error_answer_is_refused(client: TestClient, database: Database) -> None:
    start(client)
    response = client.get(
        "/api/v1/auth/oidc/psc/callback?error=access_denied&state=x", follow_redirects=False
    )
    assert_refused(response, database, "provider-error")


def test_unknown_provider_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/auth/oidc/nope/login", follow_redirects=False).status_code == 404


def test_providers_are_listed(client: TestClient) -> None:
    assert client.get("/api/v1/auth/providers").json()["items"] == [
        {
            "name": "psc",
            "display_name": "Pro Santé Connect",
            "login_url": "/api/v1/auth/oidc/psc/login",
        }
    ]


def test_a_discovery_document_naming_another_issuer_is_refused(
    op: RunningProvider, make_client: Callable[..., TestClient]
) -> None:
    # Pinned issuer: the configured one differs from what discovery announces.
    client = make_client(op, discovery_url=op.discovery_url, issuer=op.issuer + "/other")
    response = client.get("/api/v1/auth/oidc/psc/login", follow_redirects=False)
    assert response.status_code == 503
    assert response.json()["type"].endswith("provider-unavailable")
