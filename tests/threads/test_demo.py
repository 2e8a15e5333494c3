"""``hdsapp demo`` seeds threads with messages, a task and an attachment; a second run changes
nothing. Run as a subprocess, then read through the API as the demo users."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hdsapp.config import Settings
from tests.identity.test_cli import hdsapp, login, one_json


@pytest.fixture
def env(settings: Settings, database_url: str) -> dict[str, str]:
    # The same data directory as the test's application: the same root key and blob store.
    return {"HDS_DATA_DIR": str(settings.data_dir), "HDS_DATABASE_URL": database_url}


def test_the_demo_has_threads(env: dict[str, str], client: TestClient, settings: Settings) -> None:
    data = one_json(hdsapp("demo", "--json", env=env))
    group = data["group_id"]
    users = {u["email"].split("@")[0]: u for u in data["users"]}
    nurse = users["nurse"]
    assert login(client, nurse["email"], nurse["password"], nurse["totp_secret"]).is_success
    listed = client.get(f"/api/v1/groups/{group}/threads").json()["items"]
    assert [t["title"] for t in listed] == ["Retour à domicile après prothèse de hanche"]
    assert listed[0]["patient_display"]
    assert listed[0]["priority"] == "urgent"
    thread = listed[0]["id"]
    messages = client.get(f"/api/v1/threads/{thread}/messages").json()["items"]
    assert [m["seq"] for m in messages] == [1, 2, 3, 4]
    attachment = messages[-1]["attachment"]
    assert attachment["content_type"] == "application/pdf"
    document = client.get(f"/api/v1/attachments/{attachment['id']}")
    assert document.status_code == 200
    assert document.content.startswith(b"%PDF-")
    tasks = client.get("/api/v1/me/tasks").json()["items"]
    assert [t["thread_id"] for t in tasks] == [thread]
    blobs = [p for p in settings.blob_path.rglob("*") if p.is_file()]
    assert len(blobs) == 1
    # Idempotent.
    assert one_json(hdsapp("demo", "--json", env=env))["group_id"] == group
    assert len(client.get(f"/api/v1/threads/{thread}/messages").json()["items"]) == 4
    assert [p for p in settings.blob_path.rglob("*") if p.is_file()] == blobs
    pharmacist = users["pharmacist"]
    client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": "x"})
    assert login(
        client, pharmacist["email"], pharmacist["password"], pharmacist["totp_secret"]
    ).is_success
    assert len(client.get(f"/api/v1/groups/{group}/threads").json()["items"]) == 2
