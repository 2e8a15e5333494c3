"""``hdsapp groups create``, ``hdsapp groups add-member`` and the demo care group, run as
subprocesses with --json."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from hdsapp.config import Settings
from hdsapp.core.db import Database
from tests.identity.conftest import rows
from tests.identity.test_cli import hdsapp, login, one_json

PASSWORD = "a long enough passphrase"


@pytest.fixture
def env(settings: Settings, database_url: str) -> dict[str, str]:
    # The same data directory as the test's application: the same root key.
    return {"HDS_DATA_DIR": str(settings.data_dir), "HDS_DATABASE_URL": database_url}


def _user(env: dict[str, str], email: str) -> str:
    result = hdsapp(
        "users",
        "add",
        email,
        "--name",
        "Someone",
        "--password-stdin",
        "--json",
        env=env,
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    return str(one_json(result)["user_id"])


def test_create_a_group_and_add_members(env: dict[str, str], database: Database) -> None:
    coordinator = _user(env, "coord@example.org")
    doctor = _user(env, "doc@example.org")
    created = hdsapp(
        "groups", "create", "CPTS du Val", "--coordinator", "coord@example.org", "--json", env=env
    )
    assert created.returncode == 0, created.stderr
    group_id = one_json(created)["group_id"]
    uuid.UUID(group_id)
    added = hdsapp(
        "groups",
        "add-member",
        group_id,
        "Doc@Example.org",
        "--role",
        "clinician",
        "--json",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert one_json(added) == {"group_id": group_id, "user_id": doctor, "role": "clinician"}
    members = rows(database, "SELECT user_id, role, status FROM membership")
    assert sorted((str(m["user_id"]).replace("-", ""), m["role"]) for m in members) == sorted(
        [(coordinator.replace("-", ""), "coordinator"), (doctor.replace("-", ""), "clinician")]
    )
    again = hdsapp(
        "groups", "add-member", group_id, "doc@example.org", "--role", "auditor", "--json", env=env
    )
    assert again.returncode == 1
    assert one_json(again)["ok"] is False


def test_refusals_are_clear(env: dict[str, str]) -> None:
    unknown = hdsapp(
        "groups", "create", "X", "--coordinator", "nobody@example.org", "--json", env=env
    )
    assert unknown.returncode == 1
    assert "No user" in one_json(unknown)["problems"][0]
    missing = hdsapp(
        "groups",
        "add-member",
        str(uuid.uuid4()),
        "a@example.org",
        "--role",
        "clinician",
        "--json",
        env=env,
    )
    assert missing.returncode == 1
    bad_role = hdsapp(
        "groups", "add-member", str(uuid.uuid4()), "a@example.org", "--role", "surgeon", env=env
    )
    assert bad_role.returncode == 2


def test_the_demo_group_has_the_demo_users_with_their_roles(
    env: dict[str, str], client: TestClient
) -> None:
    data = one_json(hdsapp("demo", "--json", env=env))
    group_id = data["group_id"]
    roles = {u["email"]: u["role"] for u in data["users"]}
    assert sorted(roles.values()) == [
        "auditor",
        "clinician",
        "clinician",
        "clinician",
        "coordinator",
    ]
    coordinator = next(u for u in data["users"] if u["role"] == "coordinator")
    response = login(
        client, coordinator["email"], coordinator["password"], coordinator["totp_secret"]
    )
    assert response.status_code == 200, response.text
    members = client.get(f"/api/v1/groups/{group_id}/members").json()["items"]
    assert {m["email"]: m["role"] for m in members} == roles
    # The coordinator sees no patient; the demo doctor sees the three demo patients.
    assert client.get(f"/api/v1/groups/{group_id}/patients").status_code == 403
    doctor = next(u for u in data["users"] if u["email"].startswith("doctor@"))
    assert login(client, doctor["email"], doctor["password"], doctor["totp_secret"]).is_success
    found = client.get(f"/api/v1/groups/{group_id}/patients").json()
    assert found["total"] == 3
    systems = {i["system"] for p in found["items"] for i in p["resource"]["identifier"]}
    assert systems == {"urn:oid:1.2.250.1.213.1.4.10"}
    assert one_json(hdsapp("demo", "--json", env=env))["group_id"] == group_id
    assert client.get(f"/api/v1/groups/{group_id}/patients").json()["total"] == 3
