"""Canary scan: a unique marker stored through the public paths appears nowhere in clear.

Each scenario stores ``canary.marker`` the way users' data is stored (the keyring in a unit of
work, the patients API, ...) and checks it reads back. Then every place data can rest is
scanned for the marker (as text, lower/upper case, hex as PostgreSQL dumps bytea, base64 at any
alignment, UTF-16): the SQLite file with its WAL and shared memory, a ``pg_dump`` of the
PostgreSQL database, every file under the data directory (blob store, embedded broker, ledger
file, secrets), Redis (every key and value of the test database), and the captured logs and
output. Add a scenario for each new way of storing clinical data: decorate a function with
``@scenario`` (see the existing ones).
"""

from __future__ import annotations

import base64
import logging
import random
import string
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy import make_url

from hdsapp.config import Settings
from hdsapp.core.actor import Role
from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.db import Database
from tests.conftest import REDIS_URL, make_settings
from tests.groups.world import World, world
from tests.patients.data import fr_patient, new_ins

__all__ = ["world"]


@dataclass
class Canary:
    marker: str
    ins: str  # a patient's INS: no more in clear than the name
    world: World
    app: FastAPI
    settings: Settings
    database: Database
    keyring: Keyring
    notes: list[str] = field(default_factory=list)


CLIENT_LOGGERS = ("httpx", "httpcore")
Scenario = Callable[[Canary], None]
SCENARIOS: dict[str, Scenario] = {}


def scenario(function: Scenario) -> Scenario:
    """Register a way of storing clinical data; it must store ``canary.marker`` and check that
    it reads back (so the scan is not vacuous)."""
    SCENARIOS[function.__name__] = function
    return function


# -- scenarios -------------------------------------------------------------------------------


@scenario
def keyring_in_a_unit_of_work(canary: Canary) -> None:
    """Sealed with the group's key, a thread's key, and as a streamed attachment."""
    group, thread = uuid.uuid4(), uuid.uuid4()
    plaintext = f"Note about {canary.marker}: ECG normal".encode()
    aads = [
        AssociatedData(RecordKind.PATIENT_IDENTITY, group_id=str(group), record_id="p1"),
        AssociatedData(
            RecordKind.MESSAGE, group_id=str(group), thread_id=str(thread), record_id="m1"
        ),
    ]
    attachment = AssociatedData(
        RecordKind.ATTACHMENT, group_id=str(group), thread_id=str(thread), record_id="a1"
    )
    blobs = canary.settings.data_dir / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    with canary.database.unit_of_work() as session:
        session.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS canary_content (id VARCHAR(36), body %s)"
                % ("BYTEA" if canary.database.backend == "postgresql" else "BLOB")
            )
        )
        for aad in aads:
            body = canary.keyring.seal(session, aad=aad, plaintext=plaintext)
            session.execute(
                sa.text("INSERT INTO canary_content (id, body) VALUES (:id, :body)"),
                {"id": str(uuid.uuid4()), "body": body},
            )
        chunks = canary.keyring.seal_chunks(
            session, aad=attachment, plaintext=[plaintext * 50], chunk_size=1024
        )
        (blobs / "a1").write_bytes(b"".join(chunks))
        canary.keyring.blind_index(
            session, group_id=group, purpose="name-birthdate", value=f"{canary.marker}|1961-05-04"
        )
    with canary.database.unit_of_work() as session:
        stored = session.execute(sa.text("SELECT body FROM canary_content")).scalars().all()
        for aad, body in zip(aads, stored, strict=True):
            assert canary.keyring.open(session, aad=aad, envelope=bytes(body)) == plaintext


@scenario
def patients_api(canary: Canary) -> None:
    """A patient registered, read and searched through the HTTP API with a real token."""
    w = canary.world
    coordinator, doctor = w.user("coord@canary.example"), w.user("doc@canary.example")
    group = w.group("CPTS canary", coordinator)
    w.member(group, doctor, Role.CLINICIAN)
    token = w.token(doctor)
    url = f"/api/v1/groups/{group}/patients"
    patient = fr_patient(family=canary.marker, given=canary.marker + "e", ins=canary.ins)
    created = w.call("POST", url, token, json=patient)
    assert created.status_code == 201, created.text
    by_ins = w.call("GET", url, token, params={"identifier": canary.ins})
    assert by_ins.status_code == 200, by_ins.text
    assert by_ins.json()["total"] == 1
    read = w.call("GET", f"{url}/{created.json()['id']}", token)
    assert read.status_code == 200
    assert read.json()["resource"]["name"][0]["family"] == canary.marker
    found = w.call("GET", url, token, params={"family": canary.marker, "birthdate": "1979-03-15"})
    assert found.status_code == 200, found.text
    assert found.json()["total"] == 1


@scenario
def threads_api(canary: Canary) -> None:
    """A thread's title, a message, a correction, a task and an attachment (content and file
    name) posted and read back through the HTTP API with real tokens (hdsapp.threads)."""
    w, marker = canary.world, canary.marker
    coordinator, doctor = w.user("coord@threads.canary.example"), w.user("doc@threads.canary")
    nurse = w.user("nurse@threads.canary.example")
    group = w.group("CPTS threads canary", coordinator)
    w.member(group, doctor, Role.CLINICIAN)
    w.member(group, nurse, Role.CLINICIAN)
    token, other = w.token(doctor), w.token(nurse)
    patient = w.call(
        "POST", f"/api/v1/groups/{group}/patients", token, json=fr_patient(ins=new_ins())
    )
    assert patient.status_code == 201, patient.text
    opened = w.call(
        "POST",
        f"/api/v1/groups/{group}/threads",
        token,
        json={
            "patient": f"Patient/{patient.json()['id']}",
            "title": f"Suivi {marker}",
            "participants": [str(nurse)],
        },
    )
    assert opened.status_code == 201, opened.text
    thread = f"/api/v1/threads/{opened.json()['id']}"
    posted = w.call(
        "POST", f"{thread}/messages", token, json={"body": f"Bilan {marker}", "client_id": "c1"}
    )
    assert posted.status_code == 201, posted.text
    fix = {"body": f"Correction {marker}", "client_id": "c2", "corrects": posted.json()["id"]}
    assert w.call("POST", f"{thread}/messages", token, json=fix).status_code == 201
    task = w.call(
        "POST",
        f"{thread}/tasks",
        token,
        json={"description": f"Appeler {marker}", "assignee": str(nurse)},
    )
    assert task.status_code == 201, task.text
    document = b"%PDF-1.7\n" + f"Compte rendu {marker}\n".encode() * 100 + b"%%EOF\n"
    uploaded = w.call(
        "POST",
        f"{thread}/attachments",
        token,
        files={"file": (f"{marker}.pdf", document, "application/pdf")},
        data={"document_type": "report", "body": f"CR {marker}"},
    )
    assert uploaded.status_code == 201, uploaded.text
    read = w.call("GET", f"{thread}/messages", other).json()["items"]
    assert [m["body"] for m in read] == [f"Bilan {marker}", f"Correction {marker}", f"CR {marker}"]
    assert read[2]["attachment"]["filename"] == f"{marker}.pdf"
    content = w.call("GET", f"/api/v1/attachments/{read[2]['attachment']['id']}", other)
    assert content.content == document
    assert w.call("GET", thread, other).json()["title"] == f"Suivi {marker}"
    mine = w.call("GET", "/api/v1/me/tasks", other).json()["items"]
    assert [t["description"] for t in mine] == [f"Appeler {marker}"]


# -- where data rests --------------------------------------------------------------------------


def forms(marker: str) -> list[bytes]:
    """Every rendering of the marker a leak could take."""
    found: list[bytes] = []
    for text in {marker, marker.lower(), marker.upper()}:
        raw = text.encode()
        found += [raw, raw.hex().encode(), raw.hex().upper().encode(), text.encode("utf-16-le")]
        for shift in range(3):  # base64 of the marker inside a longer value, at any alignment
            encoded = base64.b64encode(b"\x00" * shift + raw)
            found.append(encoded[4:-4])
    return found


def leaks(marker: str, sources: dict[str, bytes]) -> list[str]:
    patterns = forms(marker)
    return [name for name, data in sources.items() if any(p in data for p in patterns)]


def sqlite_files(database: Database) -> dict[str, bytes]:
    path = Path(make_url(database.url).database or "")
    return {f"sqlite:{p.name}": p.read_bytes() for p in path.parent.glob(path.name + "*")}


def postgresql_dump(database: Database) -> dict[str, bytes]:
    url = make_url(database.url).set(drivername="postgresql")
    dump = subprocess.run(
        ["pg_dump", "--no-owner", url.render_as_string(hide_password=False)],
        check=True,
        capture_output=True,
    )
    return {"pg_dump": dump.stdout}


def data_dir_files(settings: Settings, skip: set[Path]) -> dict[str, bytes]:
    return {
        f"file:{p.relative_to(settings.data_dir)}": p.read_bytes()
        for p in sorted(settings.data_dir.rglob("*"))
        if p.is_file() and p.resolve() not in skip
    }


def redis_contents() -> dict[str, bytes]:
    if not REDIS_URL:
        return {}
    import redis

    client: Any = redis.Redis.from_url(REDIS_URL)
    try:
        found: dict[str, bytes] = {}
        for key in client.scan_iter(count=1000):
            kind = _bytes(client.type(key)).decode()
            parts: list[bytes] = [_bytes(key), _bytes(client.dump(key) or b"")]
            if kind == "string":
                parts.append(_bytes(client.get(key) or b""))
            elif kind == "list":
                parts += [_bytes(v) for v in client.lrange(key, 0, -1)]
            elif kind == "hash":
                for k, v in client.hgetall(key).items():
                    parts += [_bytes(k), _bytes(v)]
            elif kind == "set":
                parts += [_bytes(v) for v in client.smembers(key)]
            elif kind == "zset":
                parts += [_bytes(m) for m, _ in client.zrange(key, 0, -1, withscores=True)]
            found[f"redis:{_bytes(key).decode(errors='replace')}"] = b"\n".join(parts)
        return found
    finally:
        client.close()


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


# -- the scan --------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The suite's settings, with jobs and rate limits in Redis when it is configured (so
    that Redis is one of the places scanned)."""
    values: dict[str, object] = {"database_url": database_url}
    if REDIS_URL:
        values |= {"broker_url": REDIS_URL, "rate_limit_url": REDIS_URL}
    return make_settings(tmp_path, **values)


def new_marker() -> str:
    letters = "".join(random.choices(string.ascii_lowercase, k=14))
    return f"Canari{letters}"


def test_the_scan_finds_a_marker_in_clear() -> None:
    marker = new_marker()
    data = {
        "text": f"xx {marker} yy".encode(),
        "bytea": ("\\x" + f"aa{marker}".encode().hex()).encode(),
        "base64": base64.b64encode(f"{{'family': '{marker.lower()}'}}".encode()),
        "clean": b"nothing here",
    }
    assert leaks(marker, data) == ["text", "bytea", "base64"]


@pytest.mark.slow
def test_no_marker_in_clear_anywhere(
    world: World,
    app: FastAPI,
    settings: Settings,
    database: Database,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    if REDIS_URL:
        import redis

        with redis.Redis.from_url(REDIS_URL) as client:
            client.flushdb()
    caplog.set_level(logging.INFO)
    canary = Canary(
        marker=new_marker(),
        ins=new_ins(),
        world=world,
        app=app,
        settings=settings,
        database=database,
        keyring=app.state.keyring,
    )
    for run in SCENARIOS.values():
        run(canary)
    sources: dict[str, bytes] = {}
    skip: set[Path] = set()
    if database.backend == "sqlite":
        files = sqlite_files(database)
        sources |= files
        path = Path(make_url(database.url).database or "")
        skip = {p.resolve() for p in path.parent.glob(path.name + "*")}
    else:
        sources |= postgresql_dump(database)
    sources |= data_dir_files(settings, skip)
    sources |= redis_contents()
    # The test client's own log (httpx2) records the URLs it calls, query strings included:
    # that is the client's side, not something the server keeps.
    logged = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.__dict__!r}"
        for r in caplog.records
        if not r.name.startswith(CLIENT_LOGGERS)
    )
    out, err = capfd.readouterr()
    sources |= {"logs": logged.encode(), "stdout": out.encode(), "stderr": err.encode()}
    # Not vacuous: the stores hold something, and a sealed copy of the marker is in them.
    assert any(name.startswith(("sqlite:", "pg_dump")) for name in sources)
    assert any(name.startswith("file:blobs/") for name in sources)
    assert leaks(canary.marker, sources) == []
    assert leaks(canary.ins, sources) == []
