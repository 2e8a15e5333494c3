"""A care group for the threads tests: real users and personal access tokens (real
authentication), a patient registered through the API, and helpers over the HTTP API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from hdsapp.core.actor import Role
from hdsapp.core.db import utcnow
from hdsapp.identity import credentials
from hdsapp.models.user import User
from tests.groups.world import PASSWORD, World, world
from tests.patients.data import fr_patient, new_ins

__all__ = ["world"]


class Ward:
    """Group A: coordinator "coord", clinicians "doc", "nurse", "pharma", "physio", auditor
    "auditor"; group B: "outsider" (clinician) and its coordinator "coord-b"."""

    def __init__(self, world: World, app: FastAPI, *, logins: frozenset[str] = frozenset()) -> None:
        self.world = world
        self.app = app
        names = ("coord", "doc", "nurse", "pharma", "physio", "auditor", "outsider", "coord-b")
        # Only those who log in (browser session, step-up) get a password: argon2id is slow.
        self.users = {
            name: world.user(f"{name}@example.org", password=name in logins) for name in names
        }
        with world.database.unit_of_work() as session:
            session.execute(update(User).values(status="active"))
        self.gid = world.group("CPTS A", self.users["coord"])
        self.gid_b = world.group("CPTS B", self.users["coord-b"])
        for name in ("doc", "nurse", "pharma", "physio"):
            world.member(self.gid, self.users[name], Role.CLINICIAN)
        world.member(self.gid, self.users["auditor"], Role.AUDITOR)
        world.member(self.gid_b, self.users["outsider"], Role.CLINICIAN)
        self.tokens = {name: world.token(uid) for name, uid in self.users.items()}
        self.sessions: dict[str, tuple[TestClient, str]] = {}
        self.pid = self.register_patient()

    # -- plumbing ------------------------------------------------------------------------------

    def call(self, method: str, who: str, url: str, **kwargs: Any) -> Any:
        if who in self.sessions:
            client, csrf = self.sessions[who]
            headers = dict(kwargs.pop("headers", {}))
            if method not in {"GET", "HEAD"}:
                headers["X-CSRF-Token"] = csrf
            return client.request(method, url, headers=headers, **kwargs)
        return self.world.call(method, url, self.tokens[who], **kwargs)

    def login(self, who: str) -> None:
        """Use a browser session (fresh authentication, for step-up) for ``who`` from now on."""
        client = TestClient(self.app, base_url="https://testserver")
        client.__enter__()
        user = self.users[who]
        otp = credentials.totp_code(self.world.totp_secrets[user], credentials.totp_step(utcnow()))
        response = client.post(
            "/api/v1/auth/login",
            json={"email": self.world.emails[user], "password": PASSWORD, "otp": otp},
        )
        assert response.status_code == 200, response.text
        self.sessions[who] = (client, response.json()["csrf_token"])

    def close(self) -> None:
        for client, _ in self.sessions.values():
            client.__exit__(None, None, None)

    def count(self, table: str) -> int:
        with self.world.database.session() as session:
            return int(session.execute(select(func.count()).select_from(text(table))).scalar_one())

    # -- the API -------------------------------------------------------------------------------

    def register_patient(self, who: str = "doc", **kwargs: Any) -> str:
        kwargs.setdefault("ins", new_ins())
        response = self.call(
            "POST", who, f"/api/v1/groups/{self.gid}/patients", json=fr_patient(**kwargs)
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def open(
        self,
        who: str = "doc",
        *,
        participants: tuple[str, ...] = ("nurse",),
        title: str = "Suivi post-opératoire",
        patient: str | None = None,
        priority: str = "routine",
        expect: int = 201,
    ) -> dict[str, Any]:
        body = {
            "patient": patient or f"Patient/{self.pid}",
            "title": title,
            "participants": [str(self.users[p]) for p in participants],
            "priority": priority,
        }
        response = self.call("POST", who, f"/api/v1/groups/{self.gid}/threads", json=body)
        assert response.status_code == expect, response.text
        result: dict[str, Any] = response.json()
        return result

    def post(
        self, who: str, tid: str, body: str = "Bonjour", *, client_id: str | None = None
    ) -> Any:
        return self.call(
            "POST",
            who,
            f"/api/v1/threads/{tid}/messages",
            json={"body": body, "client_id": client_id or str(uuid.uuid4())},
        )

    def messages(self, who: str, tid: str, **params: Any) -> Any:
        return self.call("GET", who, f"/api/v1/threads/{tid}/messages", params=params)


@pytest.fixture
def ward(world: World, app: FastAPI, logins: frozenset[str]) -> Iterator[Ward]:
    built = Ward(world, app, logins=logins)
    yield built
    built.close()


@pytest.fixture
def logins() -> frozenset[str]:
    """Who gets a password (override in a test module for break-the-glass)."""
    return frozenset()
