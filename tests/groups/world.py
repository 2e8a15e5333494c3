"""A small world for the groups, patients and policy tests: real users, real personal access
tokens (real authentication through hdsapp.identity), care groups made by the services."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, select, text, update
from sqlmodel import col

from hdsapp.config import Settings
from hdsapp.core.actor import Role, system_actor
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.db import Database, utcnow
from hdsapp.groups import service as groups
from hdsapp.identity import repository as identity_repository
from hdsapp.identity import service as identity
from hdsapp.models.audit_entry import AuditEntry
from hdsapp.models.membership import Membership

PASSWORD = "correct horse battery staple"


@dataclass
class World:
    database: Database
    settings: Settings
    client: TestClient
    keyring: Keyring
    emails: dict[uuid.UUID, str] = field(default_factory=dict)
    totp_secrets: dict[uuid.UUID, str] = field(default_factory=dict)
    _rpps: Iterator[int] = field(default_factory=lambda: iter(range(10_000_000_000, 10**11)))

    def user(self, email: str, *, rpps: bool = True, password: bool = True) -> uuid.UUID:
        """A user; without a password the account is "invited" (no login, no token), which is
        enough to be a member and much cheaper (no argon2id)."""
        with self.database.unit_of_work() as session:
            created = identity.create_user(
                session=session,
                actor=system_actor(),
                email=email,
                display_name=email.split("@", maxsplit=1)[0].title(),
                password=PASSWORD if password else None,
                rpps=str(next(self._rpps)) if rpps else None,
                now=utcnow(),
            )
            self.emails[created.user.id] = email
            if created.totp_secret:
                self.totp_secrets[created.user.id] = created.totp_secret
            return created.user.id

    def token(self, user_id: uuid.UUID, scopes: str = "read,write") -> str:
        with self.database.unit_of_work() as session:
            user = identity_repository.user_by_id(session, user_id)
            created = identity.create_token(
                session=session,
                settings=self.settings,
                actor=system_actor(),
                user=user,
                name="tests",
                scopes=scopes,
                expires_in="1h",
                now=utcnow(),
            )
            return created.token

    def group(self, name: str, coordinator: uuid.UUID) -> uuid.UUID:
        with self.database.unit_of_work() as session:
            created = groups.create_group(
                session=session,
                database=self.database,
                actor=system_actor(),
                settings=self.settings,
                keyring=self.keyring,
                name=name,
                description=None,
                coordinator_email=self.emails[coordinator],
            )
            return created.id

    def member(self, group_id: uuid.UUID, user_id: uuid.UUID, role: Role) -> None:
        with self.database.unit_of_work() as session:
            groups.add_member(
                session=session,
                database=self.database,
                actor=system_actor(),
                settings=self.settings,
                group_id=group_id,
                email=self.emails[user_id],
                role=role,
            )

    def set_membership(self, group_id: uuid.UUID, user_id: uuid.UUID, **values: Any) -> None:
        """Change a membership behind the API's back (suspended, removed, expired states)."""
        if values.get("ends_at") is not None:
            values.setdefault("external", True)
        with self.database.unit_of_work() as session:
            session.execute(
                update(Membership)
                .where(col(Membership.group_id) == group_id, col(Membership.user_id) == user_id)
                .values(**values)
            )

    def audit_count(self) -> int:
        with self.database.session() as session:
            return int(session.execute(select(func.count()).select_from(AuditEntry)).scalar_one())

    def audit_tail(self, n: int = 1) -> list[dict[str, Any]]:
        with self.database.session() as session:
            result = session.execute(
                text(
                    "SELECT kind, action, outcome, group_id, patient_id, event FROM audit_entry "
                    "ORDER BY position DESC LIMIT :n"
                ),
                {"n": n},
            )
            return [dict(row._mapping) for row in result]

    def call(self, method: str, url: str, token: str | None, **kwargs: Any) -> Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.request(method, url, headers=headers, **kwargs)


def past(days: int = 1) -> dt.datetime:
    return utcnow() - dt.timedelta(days=days)


def future(days: int = 30) -> dt.datetime:
    return utcnow() + dt.timedelta(days=days)


@pytest.fixture
def world(
    app: FastAPI,
    client: TestClient,
    database: Database,
    settings: Settings,
) -> World:
    return World(database=database, settings=settings, client=client, keyring=app.state.keyring)
