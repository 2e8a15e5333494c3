"""The authorization matrix of case threads, end to end.

Every persona of the policy matrix (tests/policy/test_matrix.py, whose world this reuses), plus a
clinician with a fresh browser session (break-the-glass needs one), x every HTTP action on
threads, participants, messages, attachments, tasks and break-the-glass grants x the same or the
other care group x the caller's standing in the thread:

- participant, removed (was one), outsider (never was one);
- break-the-glass active, or expired;
- participant of a closed thread;
- participant, with an opposition of the patient covering the whole group, or naming a
  professional (the clinician of each group);
- an active break-the-glass grant over a whole-group opposition.

Each answer is compared with ``hdsapp/policy/rules.toml``, read here with tomllib and interpreted
by this file (independently of ``hdsapp.policy``); each request must append exactly one audit
entry (none for a read-only token's unsafe method, refused by authentication); the lists (threads
of a group, "what needs me") must show the state's row exactly when the table lets the caller
read it.
"""

from __future__ import annotations

import datetime as dt
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete, update
from sqlmodel import col

from hdsapp.core.actor import ALL_SCOPES, Actor, RequestInfo, Role
from hdsapp.core.db import utcnow
from hdsapp.identity import credentials
from hdsapp.models.break_glass_grant import BreakGlassGrant
from hdsapp.models.task import Task
from hdsapp.models.thread import Thread
from hdsapp.models.thread_participant import ThreadParticipant
from hdsapp.threads import service as threads
from hdsapp.threads.blobs import FilesystemBlobStore
from hdsapp.threads.schemas import MessageCreate, TaskCreate, ThreadCreate
from tests.conftest import REPO_ROOT
from tests.groups.world import PASSWORD, World
from tests.policy.cells import MATRIX_CELLS
from tests.policy.test_matrix import Matrix, Persona, matrix

__all__ = ["matrix"]

TABLE = tomllib.loads((REPO_ROOT / "hdsapp" / "policy" / "rules.toml").read_text())
ACTIONS: dict[str, dict[str, Any]] = TABLE["actions"]
RULES: list[dict[str, Any]] = TABLE["rules"]
THIS_ISSUE = {"thread", "participant", "message", "attachment", "task", "grant"}
HTTP_ACTIONS = sorted(name for name, spec in ACTIONS.items() if spec["resource"] in THIS_ISSUE)
SAFE = {"GET", "HEAD"}
STATES = (
    "participant",
    "removed",
    "outsider",
    "break-glass",
    "break-glass-expired",
    "closed",
    "opposition-group",
    "opposition-named",
    "break-glass-opposition",
)
PARTICIPANT_STATES = {"participant", "closed", "opposition-group", "opposition-named"}
GRANT_STATES = {"break-glass", "break-glass-opposition"}
OPPOSITION = {
    "opposition-group": "group",
    "opposition-named": "named",
    "break-glass-opposition": "group",
}
CREATE_STATES = ("participant", "opposition-group", "opposition-named")
SUCCESS = {
    "thread.create": 201,
    "participant.add": 201,
    "participant.remove": 204,
    "message.post": 201,
    "attachment.upload": 201,
    "task.create": 201,
    "grant.create": 201,
}
PDF = b"%PDF-1.7\nmatrix\n%%EOF\n"
REASON = "Urgence: patient inconscient, antécédents nécessaires"


# -- the table, read independently of hdsapp.policy ----------------------------------------


def _holds(
    condition: str, persona: Persona, group: uuid.UUID | None, state: str, world: Threads
) -> bool:
    if condition == "participant":
        return state in PARTICIPANT_STATES
    if condition == "not_participant":
        return state not in PARTICIPANT_STATES
    if condition == "break_glass":
        return state in GRANT_STATES
    if condition == "thread_open":
        return state != "closed"
    if condition == "no_opposition":
        kind = OPPOSITION.get(state)
        return kind is None or (
            kind == "named" and group is not None and world.named[group] != persona.user_id
        )
    if condition == "recent_authentication":
        return persona.session
    raise AssertionError(f"the threads matrix does not know the condition {condition!r}")


def decision(
    persona: Persona, action: str, group: uuid.UUID | None, state: str, world: Threads
) -> int:
    spec = ACTIONS[action]
    if persona.anonymous:
        return 401
    role = persona.roles.get(group) if group is not None else None
    if spec["tenant"] and role is None and not (persona.operator and not spec["clinical"]):
        return 404
    if spec["clinical"] and persona.operator:
        return 403
    if spec["scope"] not in persona.scopes:
        return 403
    principals = {"authenticated"} | ({"operator"} if persona.operator else set())
    if role is not None:
        principals.add(role)
    rules = [r for r in RULES if r["action"] == action and principals & set(r["principals"])]
    if not rules:
        return 403
    for rule in rules:
        if all(_holds(c, persona, group, state, world) for c in rule.get("when", [])):
            return 200
    return 403


@dataclass(frozen=True)
class Expected:
    status: int
    audit_entries: int = 1
    visible: bool | None = None


def expected(persona: Persona, cell: Cell, world: Threads) -> Expected:
    if persona.scopes == frozenset({"read"}) and cell.method not in SAFE:
        return Expected(403, audit_entries=0)  # refused by authentication
    status = decision(persona, cell.action, cell.group, cell.state, world)
    if status != 200:
        return Expected(status)
    visible = None
    if cell.action == "thread.list":
        visible = decision(persona, "thread.read", cell.group, cell.state, world) == 200
    elif cell.action == "task.list_mine":
        assigned = world.assignee[(cell.group, persona.name, cell.state)] == persona.user_id
        read = decision(persona, "task.read", cell.group, cell.state, world) == 200
        visible = assigned and read
    return Expected(SUCCESS.get(cell.action, 200), visible=visible)


# -- the world -------------------------------------------------------------------------------


@dataclass
class Seeded:
    thread: str
    patient: str
    attachment: str
    task: str
    grants: set[uuid.UUID] = field(default_factory=set)


@dataclass
class Threads:
    matrix: Matrix
    sessions: dict[str, tuple[TestClient, str]] = field(default_factory=dict)
    seeded: dict[tuple[uuid.UUID, str, str], Seeded] = field(default_factory=dict)
    assignee: dict[tuple[uuid.UUID | None, str, str], uuid.UUID | None] = field(
        default_factory=dict
    )
    targets: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    plain_patients: dict[uuid.UUID, str] = field(default_factory=dict)

    @property
    def world(self) -> World:
        return self.matrix.world

    @property
    def named(self) -> dict[uuid.UUID, uuid.UUID]:
        return self.matrix.named

    @property
    def personas(self) -> list[Persona]:
        return self.matrix.personas

    def actor(self, user: uuid.UUID, group: uuid.UUID) -> Actor:
        return Actor(
            kind="user",
            request=RequestInfo(request_id="threads-matrix-setup"),
            user_id=user,
            memberships={group: Role.CLINICIAN},
            scopes=ALL_SCOPES,
        )

    def services(self) -> dict[str, Any]:
        return {
            "database": self.world.database,
            "settings": self.world.settings,
        }

    def seed(self, group: uuid.UUID, persona: Persona, state: str) -> Seeded:
        """A thread opened by the group's seed clinician, and ``persona``'s standing in it."""
        seed = self.matrix.seeds[group]
        actor = self.actor(seed, group)
        keyring = self.matrix.app.state.keyring
        store = FilesystemBlobStore(self.world.settings.blob_path)
        if state in OPPOSITION or state not in PARTICIPANT_STATES | GRANT_STATES:
            patient, _ = self.matrix.seed_patient(group)
        else:
            patient = self.plain_patients[group]
        with self.world.database.unit_of_work() as session:
            opened = threads.open_thread(
                session=session,
                keyring=keyring,
                actor=actor,
                group_id=group,
                request=ThreadCreate(patient=f"Patient/{patient}", title="Matrix"),
                **self.services(),
            )
            tid = opened.id
            threads.post_message(
                session=session,
                keyring=keyring,
                actor=actor,
                thread_id=tid,
                request=MessageCreate(body="seed", client_id="seed"),
                **self.services(),
            )
            posted = threads.upload_attachment(
                session=session,
                keyring=keyring,
                store=store,
                actor=actor,
                thread_id=tid,
                upload=threads.Upload(data=PDF, filename="cr.pdf", document_type="report"),
                **self.services(),
            )
            assert posted.message.attachment is not None
            user = persona.user_id
            with_persona = state in PARTICIPANT_STATES or state == "removed"
            if user is not None and with_persona:
                session.add(
                    ThreadParticipant(
                        thread_id=tid,
                        user_id=user,
                        removed_at=utcnow() if state == "removed" else None,
                    )
                )
                session.flush()
            assignee = user if with_persona and user is not None else seed
            task = threads.create_task(
                session=session,
                keyring=keyring,
                actor=actor,
                thread_id=tid,
                request=TaskCreate(description="seed"),
                **self.services(),
            )
            session.execute(
                update(Task).where(col(Task.id) == task.id).values(assignee_id=assignee)
            )
            grants: set[uuid.UUID] = set()
            if user is not None and state in GRANT_STATES | {"break-glass-expired"}:
                ends = dt.timedelta(hours=1 if state != "break-glass-expired" else -1)
                grant = BreakGlassGrant(thread_id=tid, user_id=user, expires_at=utcnow() + ends)
                session.add(grant)
                grants.add(grant.id)
            if state == "closed":
                session.execute(update(Thread).where(col(Thread.id) == tid).values(status="closed"))
        kind = OPPOSITION.get(state)
        if kind is not None:
            named = self.named[group] if kind == "named" else None
            self.matrix.seed_opposition(group, patient, named=named)
        self.assignee[(group, persona.name, state)] = assignee
        return Seeded(
            thread=str(tid),
            patient=patient,
            attachment=str(posted.message.attachment.id),
            task=str(task.id),
            grants=grants,
        )

    def states_of(self, persona: Persona, group: uuid.UUID) -> tuple[str, ...]:
        return STATES if persona.roles.get(group) is not None else ("outsider",)

    def send(self, persona: Persona, cell: Cell) -> Any:
        kwargs: dict[str, Any] = {}
        if cell.files is not None:
            kwargs = {"files": cell.files, "data": cell.body}
        elif cell.body is not None:
            kwargs = {"json": cell.body}
        if persona.name in self.sessions:
            client, csrf = self.sessions[persona.name]
            headers = {} if cell.method in SAFE else {"X-CSRF-Token": csrf}
            return client.request(cell.method, cell.url, headers=headers, **kwargs)
        # The operator, whom identity does not issue, is injected (test_matrix.build).
        headers = {"X-Test-Persona": "operator"} if persona.operator else {}
        token = None if persona.operator else persona.token
        return self.world.call(cell.method, cell.url, token, headers=headers, **kwargs)


def build(matrix: Matrix) -> Threads:
    world = matrix.world
    user = world.user("clinician-session@example.org")
    world.member(matrix.a, user, Role.CLINICIAN)
    persona = Persona(
        name="clinician-session",
        user_id=user,
        email=world.emails[user],
        roles={matrix.a: "clinician"},
        holds={matrix.a},
        session=True,
    )
    matrix.personas.append(persona)
    built = Threads(matrix=matrix)
    client = TestClient(matrix.app, base_url="https://testserver")
    client.__enter__()
    otp = credentials.totp_code(world.totp_secrets[user], credentials.totp_step(utcnow()))
    response = client.post(
        "/api/v1/auth/login", json={"email": persona.email, "password": PASSWORD, "otp": otp}
    )
    assert response.status_code == 200, response.text
    built.sessions[persona.name] = (client, response.json()["csrf_token"])
    assert matrix.session_client is not None
    session_persona = next(p for p in matrix.personas if p.session and p is not persona)
    built.sessions[session_persona.name] = (matrix.session_client, matrix.csrf)
    for group in (matrix.a, matrix.b):
        built.plain_patients[group], _ = matrix.seed_patient(group)
        built.targets[group] = matrix.seed_member(group)
        for p in matrix.personas:
            for state in built.states_of(p, group):
                built.seeded[(group, p.name, state)] = built.seed(group, p, state)
    return built


# -- the cells -------------------------------------------------------------------------------


@dataclass
class Cell:
    persona: Persona
    action: str
    group: uuid.UUID | None
    state: str
    method: str
    url: str
    body: Any = None
    files: dict[str, Any] | None = None
    row: str | None = None
    before: Callable[[], None] | None = None
    after: Callable[[], None] | None = None


def cells_for(world: Threads, persona: Persona, action: str) -> Iterator[Cell]:
    base = "/api/v1"
    for group in (world.matrix.a, world.matrix.b):
        if action == "thread.create":
            for state in CREATE_STATES if persona.roles.get(group) else ("participant",):
                patient = (
                    world.plain_patients[group]
                    if state == "participant"
                    else _opposed(world, group, state)
                )
                body = {"patient": f"Patient/{patient}", "title": "Nouveau", "participants": []}
                yield Cell(
                    persona, action, group, state, "POST", f"{base}/groups/{group}/threads", body
                )
            continue
        for state in world.states_of(persona, group):
            seeded = world.seeded[(group, persona.name, state)]
            t = f"{base}/threads/{seeded.thread}"
            yield _cell(world, persona, action, group, state, seeded, t, base)


def _opposed(world: Threads, group: uuid.UUID, state: str) -> str:
    for (g, _name, s), seeded in world.seeded.items():
        if g == group and s == state:
            return seeded.patient
    raise AssertionError(state)


def _cell(
    world: Threads,
    persona: Persona,
    action: str,
    group: uuid.UUID,
    state: str,
    seeded: Seeded,
    t: str,
    base: str,
) -> Cell:
    target = world.targets[group]
    tid = uuid.UUID(seeded.thread)

    def without_target() -> None:
        with world.world.database.unit_of_work() as session:
            session.execute(
                delete(ThreadParticipant).where(
                    col(ThreadParticipant.thread_id) == tid,
                    col(ThreadParticipant.user_id) == target,
                )
            )

    def with_target() -> None:
        without_target()
        with world.world.database.unit_of_work() as session:
            session.add(ThreadParticipant(thread_id=tid, user_id=target))

    def only_seeded_grants() -> None:
        with world.world.database.unit_of_work() as session:
            session.execute(
                delete(BreakGlassGrant).where(
                    col(BreakGlassGrant.thread_id) == tid,
                    col(BreakGlassGrant.id).not_in(seeded.grants or {uuid.uuid4()}),
                )
            )

    simple: dict[str, tuple[str, str, Any]] = {
        "thread.read": ("GET", t, None),
        "thread.update": ("PATCH", t, {"priority": "urgent"}),
        "participant.list": ("GET", f"{t}/participants", None),
        "message.list": ("GET", f"{t}/messages", None),
        "message.post": ("POST", f"{t}/messages", {"body": "x", "client_id": uuid.uuid4().hex}),
        "message.mark_read": ("POST", f"{t}/read", {"seq": 0}),
        "attachment.read": ("GET", f"{base}/attachments/{seeded.attachment}", None),
        "task.list": ("GET", f"{t}/tasks", None),
        "task.create": ("POST", f"{t}/tasks", {"description": "matrix"}),
        "task.read": ("GET", f"{base}/tasks/{seeded.task}", None),
        "task.update": ("PATCH", f"{base}/tasks/{seeded.task}", {"due_date": "2030-01-01"}),
    }
    if action in simple:
        method, url, body = simple[action]
        return Cell(persona, action, group, state, method, url, body)
    if action == "thread.list":
        url = f"{base}/groups/{group}/threads?limit=100"
        return Cell(persona, action, group, state, "GET", url, row=seeded.thread)
    if action == "task.list_mine":
        return Cell(
            persona, action, group, state, "GET", f"{base}/me/tasks?limit=100", row=seeded.task
        )
    if action == "participant.add":
        body = {"user_id": str(target)}
        return Cell(
            persona,
            action,
            group,
            state,
            "POST",
            f"{t}/participants",
            body,
            before=without_target,
            after=without_target,
        )
    if action == "participant.remove":
        return Cell(
            persona,
            action,
            group,
            state,
            "DELETE",
            f"{t}/participants/{target}",
            before=with_target,
            after=without_target,
        )
    if action == "attachment.upload":
        return Cell(
            persona,
            action,
            group,
            state,
            "POST",
            f"{t}/attachments",
            body={"document_type": "report"},
            files={"file": ("cr.pdf", PDF, "application/pdf")},
        )
    if action == "grant.create":
        return Cell(
            persona,
            action,
            group,
            state,
            "POST",
            f"{t}/break-glass",
            {"reason": REASON},
            after=only_seeded_grants,
        )
    raise AssertionError(f"the threads matrix does not drive {action!r}")


def check(world: Threads, cell: Cell) -> list[str]:
    persona = cell.persona
    want = expected(persona, cell, world)
    if cell.before is not None:
        cell.before()
    before = world.world.audit_count()
    response = world.send(persona, cell)
    entries = world.world.audit_count() - before
    if cell.after is not None:
        cell.after()
    group = "A" if cell.group == world.matrix.a else "B"
    where = f"{persona.name} {cell.action} {group} {cell.state}"
    problems = []
    if response.status_code != want.status:
        problems.append(
            f"{where}: {response.status_code}, table says {want.status} ({response.text[:160]})"
        )
    if entries != want.audit_entries:
        problems.append(f"{where}: {entries} audit entries, expected {want.audit_entries}")
    if want.visible is not None and response.status_code == 200:
        ids = {item["id"] for item in response.json()["items"]}
        if (cell.row in ids) != want.visible:
            problems.append(f"{where}: row listed {cell.row in ids}, table says {want.visible}")
    return problems


@pytest.fixture
def threads_world(matrix: Matrix, app: FastAPI) -> Iterator[Threads]:
    built = build(matrix)
    yield built
    for client, _ in built.sessions.values():
        if client is not matrix.session_client:
            client.__exit__(None, None, None)


def test_every_thread_cell_answers_as_the_table_says(threads_world: Threads, backend: str) -> None:
    problems: list[str] = []
    count = 0
    for action in HTTP_ACTIONS:
        for persona in threads_world.personas:
            for cell in cells_for(threads_world, persona, action):
                problems.extend(check(threads_world, cell))
                count += 1
    MATRIX_CELLS[f"{backend}/threads"] = count
    print(f"\nthreads policy matrix ({backend}): {count} cells")
    assert not problems, f"{len(problems)} of {count} cells disagree:\n" + "\n".join(problems[:60])


def test_the_threads_matrix_covers_the_table() -> None:
    """Every thread action is driven over HTTP, and every condition of their rules is one the
    matrix interprets."""
    assert HTTP_ACTIONS, "no thread action in the table"
    for rule in RULES:
        if ACTIONS[rule["action"]]["resource"] in THIS_ISSUE:
            for condition in rule.get("when", []):
                assert condition in {
                    "participant",
                    "not_participant",
                    "break_glass",
                    "thread_open",
                    "no_opposition",
                    "recent_authentication",
                }


def test_every_thread_action_is_declared_by_a_route(app: FastAPI) -> None:
    document = app.openapi()
    declared: set[str] = set()
    for operations in document["paths"].values():
        for operation in operations.values():
            name = operation.get("x-hds-action")
            if name in ACTIONS and ACTIONS[name]["resource"] in THIS_ISSUE:
                declared.add(name)
                assert operation.get("x-hds-audited") is True, name
    assert declared == set(HTTP_ACTIONS)
