"""Live updates (GET /api/v1/me/events): Server-Sent Events of thread ids and counters only,
about the threads the caller may read, one audit entry for opening the stream, a bounded
stream, 401 without a session; on SQLite and PostgreSQL.

The TestClient hands a streamed answer over once the app has finished it, so each stream here
is read in a thread of its own while the test writes, and lasts a few seconds
(``HDS_EVENTS_STREAM_SECONDS``)."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hdsapp.config import Settings
from tests.conftest import make_settings
from tests.threads.conftest import Ward

STREAM_SECONDS = 6.0  # room for a loaded CI machine to write what the stream must see
EVENT_KEYS = {"thread", "group", "last_seq", "read_seq", "unread"}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url=database_url,
        events_stream_seconds=STREAM_SECONDS,
        events_poll_seconds=0.1,
        events_heartbeat_seconds=0.5,
    )


@dataclass
class Stream:
    """One stream read to its end in a thread: its status, raw text and parsed events."""

    app: FastAPI
    token: str
    status: int | None = None
    content_type: str = ""
    text: str = ""
    events: list[tuple[str, str]] = field(default_factory=list)
    comments: int = 0
    thread: threading.Thread | None = None

    def start(self) -> Stream:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with (
            TestClient(self.app, base_url="https://testserver") as client,
            client.stream("GET", "/api/v1/me/events", headers=headers) as response,
        ):
            self.status = response.status_code
            self.content_type = response.headers.get("content-type", "")
            self.text = "".join(response.iter_text())
        name, data = "message", ""
        for line in self.text.split("\n"):
            if line.startswith(":"):
                self.comments += 1
            elif line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif line == "" and data:
                self.events.append((name, data))
                name, data = "message", ""

    def join(self) -> Stream:
        assert self.thread is not None
        self.thread.join(timeout=STREAM_SECONDS + 30)
        assert not self.thread.is_alive(), "the stream did not end"
        return self

    def threads(self) -> list[dict[str, object]]:
        return [json.loads(data) for name, data in self.events if name == "thread"]


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def opened(ward: Ward, before: int, streams: int) -> None:
    """The streams are open (their entries are written) and have taken their baseline."""
    wait_for(lambda: ward.world.audit_count() >= before + streams)
    time.sleep(1.0)  # the baseline poll, after the entry


def test_a_participant_is_told_of_new_messages_by_ids_and_counters(ward: Ward) -> None:
    tid = ward.open(participants=("nurse",))["id"]
    other = ward.open(participants=("physio",), title="Autre fil")["id"]
    before = ward.world.audit_count()
    nurse = Stream(ward.app, ward.tokens["nurse"]).start()
    pharma = Stream(ward.app, ward.tokens["pharma"]).start()
    opened(ward, before, 2)
    assert ward.post("doc", tid, "Tension 14/9 ce matin").status_code == 201
    assert ward.post("doc", other, "Rien pour l'infirmière").status_code == 201
    time.sleep(1.0)  # several polls: each change is seen on its own
    assert ward.post("doc", tid, "Contrôle demain").status_code == 201
    nurse.join()
    pharma.join()

    assert (nurse.status, pharma.status) == (200, 200)
    assert nurse.content_type.startswith("text/event-stream")
    assert nurse.text.startswith("retry: ")
    assert nurse.events[0] == ("ready", "{}")
    events = nurse.threads()
    assert events, nurse.text
    assert {e["thread"] for e in events} == {tid}, "only the threads the nurse reads"
    assert all(set(e) == EVENT_KEYS for e in events)
    assert events[-1] == {
        "thread": tid,
        "group": str(ward.gid),
        "last_seq": 2,
        "read_seq": 0,
        "unread": 2,
    }
    # Ids and counters only: no content in the stream.
    assert "Tension" not in nurse.text
    assert "Contrôle" not in nurse.text
    # A clinician of the group in neither thread hears of neither.
    assert pharma.threads() == []
    assert nurse.comments >= 1, "heartbeats"


def test_reading_and_removal_change_what_the_stream_says(ward: Ward) -> None:
    tid = ward.open(participants=("nurse",))["id"]
    assert ward.post("doc", tid, "Premier").status_code == 201
    before = ward.world.audit_count()
    nurse = Stream(ward.app, ward.tokens["nurse"]).start()
    opened(ward, before, 1)
    read = ward.call("POST", "nurse", f"/api/v1/threads/{tid}/read", json={"seq": 1})
    assert read.status_code == 200, read.text
    time.sleep(1.0)  # several polls: each change is seen on its own
    nurse_id = ward.users["nurse"]
    removed = ward.call("DELETE", "doc", f"/api/v1/threads/{tid}/participants/{nurse_id}")
    assert removed.status_code == 204, removed.text
    time.sleep(0.6)
    assert ward.post("doc", tid, "Après son départ").status_code == 201
    nurse.join()
    events = nurse.threads()
    assert events == [
        {"thread": tid, "group": str(ward.gid), "last_seq": 1, "read_seq": 1, "unread": 0}
    ], "read on another device; nothing once removed"


def test_opening_the_stream_is_one_audit_entry(ward: Ward) -> None:
    ward.open(participants=("nurse",))
    before = ward.world.audit_count()
    nurse = Stream(ward.app, ward.tokens["nurse"]).start().join()
    assert nurse.status == 200
    assert ward.world.audit_count() == before + 1, "the polls are not entries"
    entry = ward.world.audit_tail()[0]
    assert (entry["kind"], entry["action"], entry["outcome"]) == ("search", "E", 0)
    assert str(entry["group_id"]).replace("-", "") == ward.gid.hex
    query = base64.b64encode(b"CareTeam?_stream=events").decode()
    assert query in str(entry["event"])


def test_a_caller_without_threads_is_refused_and_recorded(ward: Ward) -> None:
    before = ward.world.audit_count()
    response = ward.call("GET", "auditor", "/api/v1/me/events")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert ward.world.audit_count() == before + 1
    assert ward.world.audit_tail()[0]["outcome"] == 4


def test_without_a_session_401(client: TestClient) -> None:
    response = client.get("/api/v1/me/events")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
