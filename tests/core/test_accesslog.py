"""The one audit mechanism: entries, their AuditEvent, gap-free positions, fail-closed reads."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest
import rfc8785
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import text
from sqlmodel import Session, col, func, select

from audit.compact_range import CompactRange
from audit.leaf import leaf_for_event
from audit.merkle import leaf_hash, root
from hdsapp.core.accesslog import (
    AUDITED_ROUTE,
    DEFERRED,
    PATTERNS,
    Access,
    Outcome,
    audited,
    build_event,
    canonical_json,
    configure,
    record,
    record_separately,
    sequence_all,
)
from hdsapp.core.actor import Actor, RequestInfo, Role, Scope, anonymous, system_actor
from hdsapp.core.db import Database, utcnow
from hdsapp.core.errors import Conflict, Forbidden, NotFound, Unauthenticated
from hdsapp.dependencies import ActorDep, DatabaseDep, SessionDep, get_actor
from hdsapp.models.audit_entry import AuditEntry
from hdsapp.models.audit_head import AuditHead
from hdsapp.models.audit_node import AuditNode
from hdsapp.models.audit_pending import AuditPending
from tests.conftest import REPO_ROOT

GROUP = uuid.UUID("00000000-0000-4000-8000-00000000000a")
PATIENT = uuid.UUID("00000000-0000-4000-8000-0000000000bb")
REQUEST = RequestInfo(request_id="req-0123456789", client_ip="203.0.113.7", user_agent="pytest/1")


def clinician(**extra: Any) -> Actor:
    return Actor(
        kind="user",
        request=REQUEST,
        user_id=uuid.UUID("00000000-0000-4000-8000-0000000000c1"),
        rpps="10001234567",
        profession="10",
        memberships=MappingProxyType({GROUP: Role.CLINICIAN}),
        scopes=frozenset({Scope.READ, Scope.WRITE}),
        **extra,
    )


def a_clinician() -> Actor:
    return clinician()


def read_access(**extra: Any) -> Access:
    values: dict[str, Any] = {
        "kind": "read",
        "action": "R",
        "group_id": GROUP,
        "patient_id": PATIENT,
        "resource_type": "Communication",
        "resource_id": "42",
        "legal_basis": "care-team",
    }
    return Access(**{**values, **extra})


def entries(database: Database) -> list[AuditEntry]:
    with database.session() as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.position))).all())


def strict_fhir(event: dict[str, Any]) -> None:
    """Parses as an R4 AuditEvent, and nothing was coerced: the round trip is identical."""
    parsed = AuditEvent.model_validate(event, strict=True)
    dumped = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    # The model writes instants with microseconds: the same instant.
    assert dumped["recorded"].replace("000Z", "Z") == event["recorded"]
    assert {**dumped, "recorded": event["recorded"]} == event


def assert_tree_consistent(database: Database) -> None:
    """Positions 0..n-1, each leaf recomputes from its event, and the head and the stored
    nodes are those of the tree of the leaves."""
    rows = entries(database)
    assert [e.position for e in rows] == list(range(len(rows)))
    hashes = []
    for e in rows:
        event = json.loads(e.event)
        leaf = leaf_for_event(position=e.position, kind=e.kind, event=event, nonce=e.nonce)
        assert leaf.encode() == e.leaf
        assert leaf_hash(e.leaf) == e.leaf_hash
        hashes.append(e.leaf_hash)
    with database.session() as session:
        head = session.exec(select(AuditHead)).one()
        nodes = session.exec(select(AuditNode)).all()
    assert head.tree_size == len(rows)
    compact = CompactRange.decode(head.compact)
    assert compact.root() == root(hashes)
    for node in nodes:
        width = 1 << node.level
        assert node.hash == root(hashes[node.index * width : (node.index + 1) * width])
    assert len(nodes) == sum(len(rows) >> level for level in range(1, 64))


# -- the AuditEvent ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [*sorted(PATTERNS), "custom-thing"])
@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_kind_renders_a_strict_r4_audit_event(kind: str, outcome: Outcome) -> None:
    access = read_access(
        kind=kind,
        action="E",
        outcome=outcome,
        outcome_desc=None if outcome is Outcome.SUCCESS else "policy:not-participant",
        query="family=Martin&birthdate=1950-01-01",
        result_refs=("Patient/1", "Patient/2"),
        reason="urgence vitale" if kind == "break-glass" else None,
        purpose_of_use="ETREAT" if kind == "break-glass" else "TREAT",
    )
    event = build_event(clinician(), access, recorded=utcnow(), event_id=uuid.uuid4())
    strict_fhir(event)
    assert event["outcome"] == str(int(outcome))
    profiled = kind in PATTERNS and PATTERNS[kind].profile is not None
    assert ("meta" in event) == (outcome is Outcome.SUCCESS and profiled)


def test_a_read_follows_balp() -> None:
    actor = clinician(token_id=uuid.UUID("00000000-0000-4000-8000-0000000000d1"))
    event = build_event(actor, read_access(), recorded=utcnow(), event_id=uuid.uuid4())
    assert event["meta"]["profile"] == [
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
    ]
    assert event["type"]["code"] == "rest"
    assert event["subtype"][0]["code"] == "read"
    assert event["action"] == "R"
    user, client, server = event["agent"]
    assert user["requestor"] is True
    assert user["type"]["coding"][0]["code"] == "IRCP"
    assert user["who"]["identifier"] == {
        "system": "urn:oid:1.2.250.1.71.4.2.1",
        "value": "810001234567",
    }
    assert user["altId"] == str(actor.user_id)
    assert {"system": "urn:hdsapp:group-role", "code": "clinician"} in [
        c for r in user["role"] for c in r.get("coding", [])
    ]
    assert "urn:hdsapp:legal-basis:care-team" in user["policy"]
    assert f"urn:uuid:{actor.token_id}" in user["policy"]
    assert client["type"]["coding"][0]["code"] == "110152"
    assert client["network"] == {"address": "203.0.113.7", "type": "2"}
    assert client["who"]["display"] == "pytest/1"
    assert server["type"]["coding"][0]["code"] == "110153"
    assert event["source"]["type"][0]["code"] == "4"
    by_role = {e.get("role", {}).get("code"): e for e in event["entity"]}
    assert by_role["1"]["what"]["reference"] == f"Patient/{PATIENT}"
    assert by_role["4"]["what"]["reference"] == "Communication/42"
    request_id = next(e for e in event["entity"] if e["type"]["code"] == "XrequestId")
    assert request_id["what"]["identifier"]["value"] == "req-0123456789"
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"


def test_a_search_keeps_its_query_in_base64() -> None:
    access = Access(kind="search", action="E", group_id=GROUP, query="identifier=x|1&_count=10")
    event = build_event(clinician(), access, recorded=utcnow(), event_id=uuid.uuid4())
    query = next(e for e in event["entity"] if e.get("role", {}).get("code") == "24")
    assert base64.b64decode(query["query"]) == b"identifier=x|1&_count=10"
    assert event["subtype"][0]["code"] == "search-type"
    assert event["meta"]["profile"][0].endswith("IHE.BasicAudit.Query")


def test_anonymous_and_system_actors_render() -> None:
    for actor in (anonymous(REQUEST), system_actor()):
        event = build_event(
            actor, Access(kind="login", action="E", outcome=Outcome.DENIED),
            recorded=utcnow(), event_id=uuid.uuid4(),
        )  # fmt: skip
        strict_fhir(event)
        assert "identifier" not in event["agent"][0]["who"]


def test_hostile_request_strings_are_made_fhir_strings() -> None:
    request = RequestInfo(request_id="r" * 300, client_ip=" ", user_agent="\x00\x1b[31m evil\n")
    event = build_event(
        anonymous(request), read_access(outcome_desc="  "), recorded=utcnow(), event_id=uuid.uuid4()
    )
    strict_fhir(event)
    assert event["agent"][1]["who"]["display"] == "??[31m evil"
    assert "network" not in event["agent"][1]
    assert "outcomeDesc" not in event


def test_access_refuses_a_kind_the_leaf_cannot_carry() -> None:
    with pytest.raises(ValueError, match="kind"):
        Access(kind="Read Patient", action="R")
    with pytest.raises(ValueError, match="action"):
        Access(kind="read", action="X")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    ["plain", "é ü 中文 🩺", 'quote " backslash \\ slash /', "\t\n\r\x08\x0c\x7f", "\u2028"],
)
def test_canonical_json_is_rfc8785(value: str) -> None:
    event = build_event(
        clinician(), read_access(reason=value), recorded=utcnow(), event_id=uuid.uuid4()
    )
    event["extra"] = {"z": value, "a": [1, -2, 2**52, True, False, None, value]}
    assert canonical_json(event) == rfc8785.dumps(event)


# -- appending -----------------------------------------------------------------------------------


def test_record_appends_gap_free_in_the_callers_transaction(database: Database) -> None:
    with database.unit_of_work() as session:
        assert record(session, clinician(), read_access()) == 0
        assert record(session, clinician(), read_access(kind="update", action="U")) == 1

    def failing_use_case() -> None:
        with database.unit_of_work() as session:
            assert record(session, clinician(), read_access()) == 2
            raise RuntimeError("the business transaction fails")

    with pytest.raises(RuntimeError):
        failing_use_case()
    with database.unit_of_work() as session:
        assert record(session, clinician(), read_access()) == 2  # no gap left by the rollback
    rows = entries(database)
    assert [(e.position, e.kind, e.action) for e in rows] == [
        (0, "read", "R"), (1, "update", "U"), (2, "read", "R"),
    ]  # fmt: skip
    first = rows[0]
    assert (first.group_id, first.patient_id, first.actor_id) == (
        GROUP,
        PATIENT,
        clinician().user_id,
    )
    assert first.outcome == 0
    strict_fhir(json.loads(first.event))
    assert first.event.encode() == rfc8785.dumps(json.loads(first.event))
    assert_tree_consistent(database)


def test_the_stored_tree_follows_many_appends(database: Database) -> None:
    for batch in range(5):
        with database.unit_of_work() as session:
            for _ in range(batch * 3 + 1):
                record(session, clinician(), read_access())
    assert_tree_consistent(database)


def test_record_separately_survives_the_callers_rollback(database: Database) -> None:

    def refused_use_case() -> None:
        with database.unit_of_work() as session:
            # The caller's transaction holds the log's lock (it appended; on SQLite, it
            # began): waiting for it would deadlock, so the entry is written once it ends.
            record(session, clinician(), read_access())
            position = record_separately(
                database, clinician(), read_access(outcome=Outcome.DENIED, outcome_desc="policy:x")
            )
            assert position == DEFERRED
            raise Forbidden()

    with pytest.raises(Forbidden):
        refused_use_case()
    rows = entries(database)
    assert [(e.position, e.outcome) for e in rows] == [(0, 4)]
    assert json.loads(rows[0].event)["outcomeDesc"] == "policy:x"
    # With no transaction of this process holding the lock, it is written at once.
    assert record_separately(database, anonymous(REQUEST), Access(kind="login", action="E")) == 1
    assert_tree_consistent(database)


def test_record_separately_from_a_session_that_only_read(database: Database) -> None:
    with database.unit_of_work() as session:
        session.execute(text("SELECT 1"))
        position = record_separately(database, clinician(), read_access(outcome=Outcome.DENIED))
        assert position == (DEFERRED if database.backend == "sqlite" else 0)
    assert [e.outcome for e in entries(database)] == [4]


# -- audited ---------------------------------------------------------------------------------------


def test_audited_records_the_refined_access_on_success(database: Database) -> None:
    with database.unit_of_work() as session:
        access = Access(kind="read", action="R", group_id=GROUP, resource_type="Communication")
        with audited(session, database, clinician(), access) as scope:
            scope.patient_id = PATIENT
            scope.resource_id = "7"
            scope.result_refs = ["Communication/7"]
    (entry,) = entries(database)
    event = json.loads(entry.event)
    assert entry.patient_id == PATIENT
    assert entry.outcome == 0
    refs = [e["what"].get("reference") for e in event["entity"] if "what" in e]
    assert refs.count("Communication/7") == 2  # the data entity and the result
    assert f"Patient/{PATIENT}" in refs


@pytest.mark.parametrize(
    ("error", "outcome", "desc"),
    [
        (Forbidden(), 4, "forbidden"),
        (NotFound(), 4, "not-found"),
        (Unauthenticated(), 4, "unauthenticated"),
        (Conflict(), 8, "conflict"),
        (RuntimeError("boom"), 8, "error:RuntimeError"),
    ],
)
def test_audited_records_refusals_and_failures_separately(
    database: Database, error: Exception, outcome: int, desc: str
) -> None:

    def use_case() -> None:
        with (
            database.unit_of_work() as session,
            audited(session, database, clinician(), read_access()),
        ):
            session.execute(text("SELECT 1"))
            raise error

    with pytest.raises(type(error)):
        use_case()
    (entry,) = entries(database)
    assert entry.outcome == outcome
    assert json.loads(entry.event)["outcomeDesc"] == desc


def test_audited_keeps_the_reason_the_use_case_gave(database: Database) -> None:

    def use_case() -> None:
        with (
            database.unit_of_work() as session,
            audited(session, database, clinician(), read_access()) as scope,
        ):
            scope.outcome_desc = "policy:not-participant"
            raise Forbidden()

    with pytest.raises(Forbidden):
        use_case()
    assert json.loads(entries(database)[0].event)["outcomeDesc"] == "policy:not-participant"


def _break_audit_inserts(database: Database) -> None:
    with database.engine.begin() as connection:
        if database.backend == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER test_no_insert BEFORE INSERT ON audit_entry"
                " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION test_no_insert() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER test_no_insert BEFORE INSERT ON audit_entry"
                " FOR EACH ROW EXECUTE FUNCTION test_no_insert()"
            )


SECRET = "Mme Martin, ECG anormal"


@pytest.fixture
def secret_app(app: FastAPI) -> Iterator[FastAPI]:
    """The app plus one route that returns protected data through the mechanism."""
    router = APIRouter()

    @router.get("/api/v1/test-secret", openapi_extra=AUDITED_ROUTE)
    def read_secret(session: SessionDep, database: DatabaseDep, actor: ActorDep) -> dict[str, str]:
        with audited(session, database, actor, read_access()):
            return {"body": SECRET}

    app.include_router(router)
    app.dependency_overrides[get_actor] = a_clinician
    yield app
    app.dependency_overrides.clear()


def test_a_read_whose_entry_cannot_be_written_fails_closed(
    secret_app: FastAPI, database: Database
) -> None:
    with TestClient(secret_app, base_url="https://testserver") as client:
        ok = client.get("/api/v1/test-secret")
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"body": SECRET}
        _break_audit_inserts(database)
        response = client.get("/api/v1/test-secret")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:hdsapp:problem:audit-unavailable"
    assert SECRET not in response.text
    assert len(entries(database)) == 1


def test_a_read_whose_commit_fails_returns_nothing(
    secret_app: FastAPI, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_commit(self: Session) -> None:
        raise RuntimeError("connection lost at commit")

    with TestClient(secret_app, base_url="https://testserver") as client:
        # After start-up, which may commit on its own.
        monkeypatch.setattr(Session, "commit", failing_commit)
        response = client.get("/api/v1/test-secret")
        monkeypatch.undo()
    assert response.status_code >= 500
    assert SECRET not in response.text
    assert entries(database) == []


# -- concurrency -----------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, uuid
    from hdsapp.core.accesslog import Access, record, record_separately
    from hdsapp.core.actor import RequestInfo, anonymous
    from hdsapp.core.db import Database

    url, count, worker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    database = Database(url)
    actor = anonymous(RequestInfo(request_id=f"writer-{worker}"))
    for i in range(count):
        access = Access(kind="read", action="R", resource_type="Thing", resource_id=f"{worker}-{i}")
        if i % 2:
            record_separately(database, actor, access)
        else:
            with database.unit_of_work() as session:
                record(session, actor, access)
                record(session, actor, access)
    database.dispose()
    """
)


@pytest.mark.slow
def test_four_processes_append_without_gaps(database: Database, database_url: str) -> None:
    count = 30
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, database_url, str(count), str(w)],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        for w in range(4)
    ]
    assert [w.wait(timeout=240) for w in writers] == [0, 0, 0, 0]
    rows = entries(database)
    assert len(rows) == 4 * (count // 2) * 3
    assert_tree_consistent(database)
    ids = [json.loads(e.event)["id"] for e in rows]
    assert len(set(ids)) == len(ids)


# -- sequencer mode ------------------------------------------------------------------------------


@pytest.fixture
def sequencer_mode() -> Iterator[None]:
    configure("sequencer")
    yield
    configure(None)


def pending_count(database: Database) -> int:
    with database.session() as session:
        return int(session.execute(select(func.count()).select_from(AuditPending)).scalar_one())


@pytest.mark.usefixtures("sequencer_mode")
def test_the_sequencer_places_pending_entries(database: Database) -> None:
    with database.unit_of_work() as session:
        assert record(session, clinician(), read_access()) == DEFERRED
        assert record(session, clinician(), read_access(kind="update", action="U")) == DEFERRED

    def refused_use_case() -> None:
        with database.unit_of_work() as session:
            record(session, clinician(), read_access())  # rolled back with the request
            record_separately(database, clinician(), read_access(outcome=Outcome.DENIED))
            raise Forbidden()

    with pytest.raises(Forbidden):
        refused_use_case()
    assert pending_count(database) == 3
    assert entries(database) == []
    assert sequence_all(database, limit=2) == 3
    assert pending_count(database) == 0
    assert [(e.position, e.kind, e.outcome) for e in entries(database)] == [
        (0, "read", 0), (1, "update", 0), (2, "read", 4),
    ]  # fmt: skip
    assert_tree_consistent(database)
    with (
        database.unit_of_work() as session,
        audited(session, database, clinician(), read_access()) as scope,
    ):
        scope.resource_id = "99"
    assert sequence_all(database) == 1
    assert json.loads(entries(database)[3].event)["entity"][1]["what"]["reference"].endswith("/99")
    assert_tree_consistent(database)


SEQUENCER = textwrap.dedent(
    """
    import sys, time
    from hdsapp.core.accesslog import sequence_all
    from hdsapp.core.db import Database

    database = Database(sys.argv[1])
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        sequence_all(database, limit=7)
        time.sleep(0.01)
    database.dispose()
    """
)


@pytest.mark.slow
def test_four_writers_and_two_sequencers_without_gaps(
    database: Database, database_url: str
) -> None:
    count = 30
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HDS_AUDIT_MODE": "sequencer"}
    sequencers = [
        subprocess.Popen(
            [sys.executable, "-c", SEQUENCER, database_url, "20"], cwd=REPO_ROOT, env=env
        )
        for _ in range(2)
    ]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, database_url, str(count), str(w)],
            cwd=REPO_ROOT,
            env=env,
        )
        for w in range(4)
    ]
    assert [w.wait(timeout=240) for w in writers] == [0, 0, 0, 0]
    assert [s.wait(timeout=240) for s in sequencers] == [0, 0]
    sequence_all(database)
    assert pending_count(database) == 0
    rows = entries(database)
    assert len(rows) == 4 * (count // 2) * 3
    assert_tree_consistent(database)
    ids = [json.loads(e.event)["id"] for e in rows]
    assert len(set(ids)) == len(ids)
