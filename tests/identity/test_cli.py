"""``hdsapp users``, ``hdsapp tokens`` and ``hdsapp demo``, run as subprocesses with --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from hdsapp.core.db import Database
from tests.identity.conftest import rows, session_rows

PASSWORD = "a long enough passphrase"


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {"HDS_DATA_DIR": str(tmp_path / "var"), "HDS_DATABASE_URL": database_url}


def hdsapp(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("HDS_") or k.startswith("HDS_TEST_")
    }
    return subprocess.run(
        [sys.executable, "-m", "hdsapp", *args],
        env={**clean, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(lines[0])
    return data


def login(client: TestClient, email: str, password: str, secret: str) -> Any:
    return client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": password, "otp": pyotp.TOTP(secret).now()},
    )


def test_users_add_reads_the_password_from_stdin(env: dict[str, str], client: TestClient) -> None:
    result = hdsapp(
        "users",
        "add",
        "Dr.House@Example.org",
        "--name",
        "Gregory House",
        "--rpps",
        "12345678901",
        "--profession",
        "10",
        "--password-stdin",
        "--json",
        env=env,
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    data = one_json(result)
    assert set(data) == {"user_id", "totp_secret"}
    assert PASSWORD not in result.stdout
    response = login(client, "dr.house@example.org", PASSWORD, data["totp_secret"])
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == data["user_id"]
    assert response.json()["user"]["rpps"] == "12345678901"
    text = hdsapp(
        "users", "add", "b@example.org", "--name", "B", "--password-stdin", env=env, stdin=PASSWORD
    )
    assert "otpauth://totp/" in text.stdout


def add_user(email: str) -> list[str]:
    return ["users", "add", email, "--name", email[0].upper(), "--password-stdin", "--json"]


def test_users_add_refusals_are_one_json_object(env: dict[str, str]) -> None:
    weak = hdsapp(*add_user("c@example.org"), env=env, stdin="short\n")
    assert weak.returncode == 1
    assert one_json(weak)["ok"] is False
    assert "12" in one_json(weak)["problems"][0]
    ok = hdsapp(*add_user("c@example.org"), env=env, stdin=PASSWORD)
    assert ok.returncode == 0
    again = hdsapp(*add_user("c@example.org"), env=env, stdin=PASSWORD)
    assert again.returncode == 1
    assert one_json(again)["error"] == "refused"
    empty = hdsapp(
        "users", "add", "d@example.org", "--name", "D", "--password-stdin", "--json", env=env
    )
    assert empty.returncode == 1
    # The password is never an argument.
    argv = hdsapp("users", "add", "e@example.org", "--name", "E", "--password", "x", env=env)
    assert argv.returncode == 2


def test_users_add_without_password_invites(env: dict[str, str], database_url: str) -> None:
    result = hdsapp(
        "users", "add", "f@example.org", "--name", "F", "--rpps", "10000000001", "--json", env=env
    )
    assert result.returncode == 0, result.stderr
    assert one_json(result)["totp_secret"] is None


def test_users_suspend_ends_sessions(
    env: dict[str, str], client: TestClient, database_url: str
) -> None:
    data = one_json(hdsapp(*add_user("g@example.org"), env=env, stdin=PASSWORD))
    assert login(client, "g@example.org", PASSWORD, data["totp_secret"]).status_code == 200
    assert client.get("/api/v1/me").status_code == 200
    suspended = hdsapp("users", "suspend", "g@example.org", "--json", env=env)
    assert suspended.returncode == 0, suspended.stderr
    assert one_json(suspended) == {"user_id": data["user_id"], "status": "suspended"}
    assert client.get("/api/v1/me").status_code == 401
    unknown = hdsapp("users", "suspend", "nobody@example.org", "--json", env=env)
    assert unknown.returncode == 1
    activated = hdsapp("users", "activate", "g@example.org", "--json", env=env)
    assert one_json(activated)["status"] == "active"


def test_tokens_create(env: dict[str, str], client: TestClient) -> None:
    hdsapp(
        "users", "add", "h@example.org", "--name", "H", "--password-stdin", env=env, stdin=PASSWORD
    )
    create = ["tokens", "create", "h@example.org", "--scope", "read,audit", "--expires-in", "1h"]
    result = hdsapp(*create, "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = one_json(result)
    assert set(data) == {"token_id", "token"}
    assert data["token"].startswith("hds_pat_")
    headers = {"Authorization": f"Bearer {data['token']}"}
    me = client.get("/api/v1/me", headers=headers).json()
    assert me["authentication"]["scopes"] == ["audit", "read"]
    assert me["authentication"]["token_id"] == data["token_id"]
    bad = hdsapp("tokens", "create", "h@example.org", "--scope", "root", "--json", env=env)
    assert bad.returncode == 1
    assert "scope" in one_json(bad)["problems"][0]


def test_demo_users_can_log_in_and_demo_is_idempotent(
    env: dict[str, str], client: TestClient, database: Database
) -> None:
    first = hdsapp("demo", "--json", env=env)
    assert first.returncode == 0, first.stderr
    data = one_json(first)
    assert data["group_id"]  # the demo care group (hdsapp.groups; tests/groups/test_cli.py)
    users = data["users"]
    assert {u["role"] for u in users} == {"coordinator", "clinician", "auditor"}
    assert len(users) == 5
    assert all(set(u) == {"email", "password", "totp_secret", "role"} for u in users)
    for user in users:
        response = login(client, user["email"], user["password"], user["totp_secret"])
        assert response.status_code == 200, (user["email"], response.text)
    professions = sorted(
        str(r["profession"]) for r in rows(database, "SELECT profession FROM user_account")
    )
    assert professions == ["10", "21", "60", "None", "None"]
    second = hdsapp("demo", "--json", env=env)
    assert one_json(second) == data
    assert len(session_rows(database)) == 5


def test_demo_is_refused_in_production(env: dict[str, str], tmp_path: Path) -> None:
    assert hdsapp("init", "--json", env=env).returncode == 0
    production = {
        **env,
        "HDS_ENV": "production",
        "HDS_PUBLIC_URL": "https://care.example.org",
        "HDS_TRUSTED_HOSTS": "care.example.org",
    }
    result = hdsapp("demo", "--json", env=production)
    assert result.returncode != 0
    assert one_json(result)["ok"] is False
