"""Refused logins: one generic answer, replay, recovery codes, throttling, suspension, audit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hdsapp.app import create_app
from hdsapp.config import Settings
from hdsapp.core.actor import system_actor
from hdsapp.core.db import Database, utcnow
from hdsapp.identity import credentials, service
from tests.conftest import REDIS_URL, make_settings, require_service
from tests.identity.conftest import (
    Account,
    Browser,
    audit_events,
    browser_for,
    execute,
    login,
    rows,
    session_rows,
    set_cookie_names,
    shift_session,
)

VOLATILE = ("request_id", "instance")


def problem(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return {k: v for k, v in body.items() if k not in VOLATILE}


def test_unknown_user_wrong_password_and_wrong_code_get_the_same_401(
    client: TestClient, account: Account, database: Database
) -> None:
    wrong_code = f"{(int(account.otp()) + 1) % 1_000_000:06d}"
    attempts = [
        {"email": "nobody@example.org", "password": account.password, "otp": account.otp()},
        {"email": account.email, "password": "wrong password 123", "otp": account.otp()},
        {"email": account.email, "password": account.password, "otp": wrong_code},
        {"email": account.email.upper(), "password": account.password, "otp": "abcdef"},
    ]
    answers = [client.post("/api/v1/auth/login", json=body) for body in attempts]
    assert {a.status_code for a in answers} == {401}
    bodies = [problem(a) for a in answers]
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["type"].endswith("invalid-credentials")
    assert all("set-cookie" not in a.headers for a in answers)
    assert session_rows(database) == []
    failures = audit_events(database, "login")
    assert [f["outcome"] for f in failures] == [4, 4, 4, 4]
    reasons = [f["event"]["outcomeDesc"] for f in failures]
    assert reasons == ["unknown-account", "wrong-password", "wrong-otp", "wrong-otp"]
    # A refused login against an existing account is recorded under that account's id.
    assert failures[0]["actor_id"] is None
    assert {str(f["actor_id"]).replace("-", "") for f in failures[1:]} == {account.user_id.hex}


def test_an_unknown_user_costs_a_password_hash_too(
    client: TestClient, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counted, not timed (the times are bench/identity's): each refusal verifies exactly one
    # argon2id hash, so an unknown account answers as slowly as a known one.
    verified: list[str] = []
    real_verify = credentials._verify

    def spy(password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return real_verify(password_hash, password)

    monkeypatch.setattr(credentials, "_verify", spy)
    for email in (account.email, "ghost@example.org"):
        answer = client.post(
            "/api/v1/auth/login", json={"email": email, "password": "x" * 20, "otp": "000000"}
        )
        assert answer.status_code == 401
    assert len(verified) == 2
    assert all(h.startswith("$argon2id$v=19$m=19456,t=2,p=1$") for h in verified)
    assert verified[0] != verified[1]  # the account's own hash, then the stand-in


def test_a_totp_code_is_accepted_once(client: TestClient, account: Account) -> None:
    code = account.otp()
    assert login(client, account, otp=code).status_code == 200
    again = login(client, account, otp=code)
    assert again.status_code == 401
    # An earlier code of the same window is refused too; a later one works.
    step = credentials.totp_step(utcnow())
    earlier = credentials.totp_code(account.totp_secret, step - 1)
    assert login(client, account, otp=earlier).status_code == 401
    later = credentials.totp_code(account.totp_secret, step + 1)
    assert login(client, account, otp=later).status_code == 200


def test_concurrent_logins_with_one_code_let_one_in(
    account: Account, new_client: Callable[[], TestClient], database: Database
) -> None:
    code = account.otp()
    clients = [new_client() for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda c: login(c, account, otp=code).status_code, clients))
    assert sorted(statuses) == [200, 401, 401, 401]
    assert len(session_rows(database)) == 1


def test_recovery_codes_work_once(
    browser: Browser, new_client: Callable[[], TestClient], database: Database
) -> None:
    response = browser.unsafe("POST", "/api/v1/me/recovery-codes")
    assert response.status_code == 201, response.text
    codes = response.json()["codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    stored = rows(database, "SELECT code_hash FROM recovery_code")
    assert all(code not in str(stored) for code in codes)
    other = new_client()
    first = login(other, browser.account, otp=codes[0].upper())
    assert first.status_code == 200, first.text
    assert login(new_client(), browser.account, otp=codes[0]).status_code == 401
    assert login(new_client(), browser.account, otp=codes[1].replace("-", "")).status_code == 200
    # New codes replace the old ones.
    fresh = browser_for(new_client(), browser.account)
    renewed = fresh.unsafe("POST", "/api/v1/me/recovery-codes").json()["codes"]
    assert login(new_client(), browser.account, otp=codes[2]).status_code == 401
    assert login(new_client(), browser.account, otp=renewed[0]).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"email": "a@example.org", "password": "p" * 12}, 422),
        ({"email": "a@example.org", "password": "p" * 12, "otp": "1", "extra": 1}, 422),
        ({"email": "a@example.org", "password": "p" * 2000, "otp": "1"}, 422),
        ("not json", 400),
    ],
)
def test_malformed_bodies_are_400_or_422(
    client: TestClient, database: Database, body: Any, status: int
) -> None:
    if isinstance(body, str):
        response = client.post(
            "/api/v1/auth/login", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = client.post("/api/v1/auth/login", json=body)
    assert response.status_code == status
    assert session_rows(database) == []
    assert rows(database, "SELECT * FROM login_throttle") == []


def test_failures_delay_the_account_then_429_with_retry_after(
    client: TestClient, account: Account, database: Database
) -> None:
    for _ in range(5):
        assert login(client, account, password="wrong password!").status_code == 401
    # The fifth failure starts the delay: even the right credentials must wait.
    blocked = login(client, account)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert session_rows(database) == []
    [throttle] = rows(database, "SELECT * FROM login_throttle")
    assert throttle["failures"] == 5
    # The delay grows with each failure.
    execute(database, "UPDATE login_throttle SET next_allowed_at = last_failure_at")
    assert login(client, account, password="wrong password!").status_code == 401
    blocked = login(client, account)
    assert int(blocked.headers["retry-after"]) >= 2
    execute(database, "UPDATE login_throttle SET next_allowed_at = last_failure_at")
    assert login(client, account).status_code == 200
    assert rows(database, "SELECT * FROM login_throttle") == []  # success resets it
    outcomes = [
        (e["outcome"], e["event"].get("outcomeDesc")) for e in audit_events(database, "login")
    ]
    assert (4, "throttled") in outcomes
    assert any(desc and "delayed" in desc for _, desc in outcomes)


def test_unknown_accounts_are_throttled_like_known_ones(client: TestClient) -> None:
    body = {"email": "ghost@example.org", "password": "wrong password!", "otp": "123456"}
    answers = [client.post("/api/v1/auth/login", json=body).status_code for _ in range(6)]
    assert answers == [401] * 5 + [429]


def test_hourly_failure_cap(client: TestClient, account: Account, database: Database) -> None:
    login(client, account, password="wrong password!")
    execute(database, "UPDATE login_throttle SET window_failures = 100")
    blocked = login(client, account)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 3000


@pytest.fixture
def limited_app(
    tmp_path: Path, database_url: str, database: Database
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**values: Any) -> TestClient:
        settings: Settings = make_settings(
            tmp_path, database_url=database_url, auth_requests_per_minute=3, **values
        )
        test_client = TestClient(create_app(settings, database), base_url="https://testserver")
        test_client.__enter__()
        clients.append(test_client)
        return test_client

    yield make
    for test_client in clients:
        test_client.__exit__(None, None, None)


def _limited(make: Callable[..., TestClient], **values: Any) -> None:
    first, second = make(**values), make(**values)  # two app instances, shared counters
    body = {"email": "ghost@example.org", "password": "x" * 12, "otp": "000000"}
    statuses = [first.post("/api/v1/auth/login", json=body).status_code for _ in range(2)]
    statuses.append(second.post("/api/v1/auth/login", json=body).status_code)
    limited = second.post("/api/v1/auth/login", json=body)
    assert statuses == [401, 401, 401]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["type"].endswith("too-many-requests")
    assert first.get("/api/v1/auth/oidc/psc/login").status_code == 429


def test_per_ip_rate_limit_in_the_database(
    limited_app: Callable[..., TestClient], database: Database
) -> None:
    _limited(limited_app)
    [counter] = rows(database, "SELECT * FROM rate_limit_counter")
    assert counter["count"] >= 4


def test_per_ip_rate_limit_in_redis(limited_app: Callable[..., TestClient]) -> None:
    if not REDIS_URL:
        require_service("Redis (HDS_TEST_REDIS_URL)")
    import redis

    connection = redis.Redis.from_url(REDIS_URL)
    for key in connection.scan_iter("LIMITS*"):
        connection.delete(key)
    connection.close()
    _limited(limited_app, rate_limit_url=REDIS_URL)


def test_suspension_ends_sessions_and_tokens_at_once(
    browser: Browser, database: Database, new_client: Callable[[], TestClient]
) -> None:
    created = browser.unsafe(
        "POST", "/api/v1/me/tokens", json={"name": "script", "scopes": ["read"]}
    ).json()
    bearer = {"Authorization": f"Bearer {created['token']}"}
    script = new_client()
    assert script.get("/api/v1/me", headers=bearer).status_code == 200
    with database.unit_of_work() as session:
        user = service.user_by_email(session, browser.account.email)
        service.set_status(
            session=session, actor=system_actor(), user=user, status="suspended", now=utcnow()
        )
    assert browser.client.get("/api/v1/me").status_code == 401
    assert script.get("/api/v1/me", headers=bearer).status_code == 401
    assert all(r["revoked_at"] is not None for r in session_rows(database))
    assert rows(database, "SELECT revoked_at FROM personal_access_token")[0]["revoked_at"]
    # And a suspended account cannot log in again (same generic answer).
    again = login(new_client(), browser.account)
    assert again.status_code == 401
    assert again.json()["type"].endswith("invalid-credentials")


def test_suspension_is_checked_on_every_request_even_without_revocation(
    browser: Browser, database: Database
) -> None:
    execute(database, "UPDATE user_account SET status = 'suspended'")
    assert browser.client.get("/api/v1/me").status_code == 401


def test_every_login_and_logout_is_audited(
    client: TestClient, account: Account, database: Database
) -> None:
    assert login(client, account, password="wrong password!").status_code == 401
    session = browser_for(client, account)
    assert session.unsafe("POST", "/api/v1/auth/logout").status_code == 204
    kinds = [(e["kind"], e["outcome"]) for e in audit_events(database) if e["kind"] != "create"]
    assert kinds == [("login", 4), ("login", 0), ("logout", 0)]
    login_event = audit_events(database, "login")[1]["event"]
    assert login_event["type"]["code"] == "110114"
    assert login_event["subtype"][0]["code"] == "110122"
    assert login_event["action"] == "E"
    who = login_event["agent"][0]["who"]["identifier"]
    assert who["value"] == "810101010101"  # the IDNPS


def test_step_up_after_a_few_minutes(browser: Browser, database: Database) -> None:
    [row] = session_rows(database)
    shift_session(database, str(row["id"]), authenticated_at=dt.timedelta(minutes=6))
    refused = browser.unsafe("POST", "/api/v1/me/tokens", json={"name": "x", "scopes": ["read"]})
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("step-up-required")
    wrong = browser.unsafe(
        "POST",
        "/api/v1/auth/reauthenticate",
        json={"password": "wrong password!", "otp": browser.account.otp()},
    )
    assert wrong.status_code == 401
    ok = browser.unsafe(
        "POST",
        "/api/v1/auth/reauthenticate",
        json={"password": browser.account.password, "otp": browser.account.otp()},
    )
    assert ok.status_code == 200, ok.text
    assert "set-cookie" not in ok.headers
    created = browser.unsafe("POST", "/api/v1/me/tokens", json={"name": "x", "scopes": ["read"]})
    assert created.status_code == 201
    [after] = session_rows(database)
    assert after["authenticated_at"] != row["authenticated_at"]


def test_require_recent_authentication() -> None:
    from hdsapp.core.actor import Actor, RequestInfo
    from hdsapp.core.errors import Forbidden

    now = utcnow()
    request = RequestInfo(request_id="t")

    def actor(kind: Any, seconds_ago: float | None) -> Actor:
        at = None if seconds_ago is None else now - dt.timedelta(seconds=seconds_ago)
        return Actor(kind=kind, request=request, authenticated_at=at)

    service.require_recent_authentication(actor("user", 10), now)
    service.require_recent_authentication(actor("system", None), now)
    for refused in (actor("user", 301), actor("user", None), actor("token", 1)):
        with pytest.raises(Forbidden) as caught:
            service.require_recent_authentication(refused, now)
        assert caught.value.status == 403
        assert caught.value.code == "step-up-required"
    service.require_recent_authentication(actor("user", 500), now, max_age_seconds=600)


def test_the_session_endpoint_needs_a_session(client: TestClient) -> None:
    assert client.get("/api/v1/auth/session").status_code == 401


def test_set_cookie_never_sent_on_refusals(client: TestClient, account: Account) -> None:
    response = login(client, account, otp="000000")
    assert set_cookie_names(response) == []
