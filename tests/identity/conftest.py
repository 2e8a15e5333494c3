"""Helpers of the identity tests: users made through the service, logins, database peeks."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import text, update
from sqlmodel import col

from hdsapp.core.actor import system_actor
from hdsapp.core.db import Database, utcnow
from hdsapp.identity import credentials, service
from hdsapp.models.user import User

PASSWORD = "correct horse battery staple"
SESSION_COOKIE = service.SESSION_COOKIE


@dataclass
class Account:
    user_id: uuid.UUID
    email: str
    password: str
    totp_secret: str
    database: Database

    def otp(self, *, reset: bool = True, offset: int = 0) -> str:
        """A valid TOTP code now; ``reset`` forgets the last used step so it is accepted."""
        if reset:
            with self.database.unit_of_work() as session:
                session.execute(
                    update(User).where(col(User.id) == self.user_id).values(totp_last_step=None)
                )
        return credentials.totp_code(self.totp_secret, credentials.totp_step(utcnow()) + offset)


def create_account(
    database: Database,
    email: str,
    *,
    password: str = PASSWORD,
    rpps: str | None = None,
    profession: str | None = None,
) -> Account:
    with database.unit_of_work() as session:
        created = service.create_user(
            session=session,
            actor=system_actor(),
            email=email,
            display_name=email.split("@", maxsplit=1)[0].title(),
            password=password,
            rpps=rpps,
            profession=profession,
            now=utcnow(),
        )
        assert created.totp_secret is not None
        return Account(created.user.id, email, password, created.totp_secret, database)


@pytest.fixture
def make_account(database: Database) -> Callable[..., Account]:
    counter = iter(range(1000))

    def make(email: str | None = None, **kwargs: Any) -> Account:
        return create_account(database, email or f"user{next(counter)}@example.org", **kwargs)

    return make


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account("alice@example.org", rpps="10101010101", profession="10")


def login(client: TestClient, account: Account, **overrides: str) -> Response:
    body = {"email": account.email, "password": account.password}
    body.update(overrides)
    if "otp" not in body:
        body["otp"] = account.otp()
    return client.post("/api/v1/auth/login", json=body)


@dataclass
class Browser:
    """A logged-in TestClient and its CSRF token."""

    client: TestClient
    csrf: str
    account: Account

    @property
    def cookie(self) -> str:
        value = self.client.cookies.get(SESSION_COOKIE)
        assert value is not None
        return value

    def unsafe(self, method: str, url: str, **kwargs: Any) -> Response:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)


def browser_for(client: TestClient, account: Account) -> Browser:
    response = login(client, account)
    assert response.status_code == 200, response.text
    return Browser(client, response.json()["csrf_token"], account)


@pytest.fixture
def browser(client: TestClient, account: Account) -> Browser:
    return browser_for(client, account)


@pytest.fixture
def new_client(app: FastAPI) -> Iterator[Callable[[], TestClient]]:
    """More independent browsers on the same app."""
    opened: list[TestClient] = []

    def make() -> TestClient:
        test_client = TestClient(app, base_url="https://testserver")
        test_client.__enter__()
        opened.append(test_client)
        return test_client

    yield make
    for test_client in opened:
        test_client.__exit__(None, None, None)


def rows(database: Database, sql: str, **params: Any) -> list[dict[str, Any]]:
    with database.session() as session:
        result = session.execute(text(sql), params)
        return [dict(row._mapping) for row in result]


def execute(database: Database, sql: str, **params: Any) -> None:
    with database.unit_of_work() as session:
        session.execute(text(sql), params)


def shift_session(database: Database, session_id: str, **deltas: dt.timedelta) -> None:
    """Move the stored timestamps of a session into the past."""
    with database.unit_of_work() as session:
        from hdsapp.models.auth_session import AuthSession

        row = session.get(AuthSession, uuid.UUID(session_id))
        assert row is not None
        for name, delta in deltas.items():
            setattr(row, name, getattr(row, name) - delta)
        session.add(row)


def audit_events(database: Database, kind: str | None = None) -> list[dict[str, Any]]:
    """The audit entries (kind, outcome, actor, parsed event), oldest first."""
    sql = "SELECT position, kind, action, outcome, actor_id, event FROM audit_entry"
    found = rows(database, sql + " ORDER BY position")
    for row in found:
        row["event"] = json.loads(row["event"])
    return [r for r in found if kind is None or r["kind"] == kind]


def session_rows(database: Database) -> list[dict[str, Any]]:
    return rows(database, "SELECT * FROM auth_session")


def set_cookie_names(response: Response) -> list[str]:
    return [h.split("=", 1)[0] for h in response.headers.get_list("set-cookie")]
