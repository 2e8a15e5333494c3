"""The authorization matrix, end to end.

Every persona x every HTTP action of the groups, memberships, invitations, patients and
oppositions x the same or the other care group x the relevant resource states (opposition
none / whole group / naming a professional; invitation addressed to the caller or not) is
driven through the real HTTP API with real authentication (personal access tokens, a browser
session for step-up; only the platform operator, whom identity does not issue, is injected).
Each answer is compared with what ``hdsapp/policy/rules.toml`` says — read here with tomllib and
interpreted by this file, independently of ``hdsapp.policy`` — and each request must append
exactly one entry to the audit log.

One departure is expected and checked as such: identity refuses a token's unsafe method without
the ``write`` scope at authentication (403, before any use case), so that refusal has no audit
entry and answers 403 where the table would answer 404 outside the caller's groups.
"""

from __future__ import annotations

import datetime as dt
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from sqlmodel import col

from hdsapp.core.actor import ALL_SCOPES, Actor, RequestInfo, Role
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.db import utcnow
from hdsapp.dependencies import get_actor, request_info
from hdsapp.groups import service as groups
from hdsapp.groups.schemas import InvitationCreate
from hdsapp.identity import credentials
from hdsapp.models.invitation import Invitation
from hdsapp.models.membership import Membership
from hdsapp.patients import service as patients
from hdsapp.patients.schemas import OppositionCreate
from tests.conftest import REPO_ROOT
from tests.groups.world import PASSWORD, World, past
from tests.patients.data import fr_patient, new_ins
from tests.policy.cells import MATRIX_CELLS

TABLE = tomllib.loads((REPO_ROOT / "hdsapp" / "policy" / "rules.toml").read_text())
ACTIONS: dict[str, dict[str, Any]] = TABLE["actions"]
RULES: list[dict[str, Any]] = TABLE["rules"]
THIS_ISSUE = {"group", "membership", "invitation", "patient", "opposition"}
HTTP_ACTIONS = sorted(
    name
    for name, spec in ACTIONS.items()
    if spec["resource"] in THIS_ISSUE and not spec["http"].startswith("cli")
)
SAFE = {"GET", "HEAD"}
INS_TEST = "urn:oid:1.2.250.1.213.1.4.10"
OPPOSITION_STATES = ("none", "whole-group", "named")
INVITATION_STATES = ("to-caller", "to-someone-else")
SUCCESS = {
    "group.create": 201,
    "invitation.create": 201,
    "patient.create": 201,
    "opposition.create": 201,
    "member.remove": 204,
    "invitation.revoke": 204,
}


@dataclass
class Persona:
    name: str
    user_id: uuid.UUID | None = None
    email: str | None = None
    roles: dict[uuid.UUID, str] = field(default_factory=dict)  # active memberships
    holds: set[uuid.UUID] = field(default_factory=set)  # memberships that still hold
    scopes: frozenset[str] = frozenset({"read", "write"})
    token: str | None = None
    operator: bool = False
    session: bool = False
    anonymous: bool = False


@dataclass(frozen=True)
class Expected:
    status: int
    audit_entries: int = 1
    visible: bool | None = None  # for lists: is the row visible


# -- the table, read independently of hdsapp.policy ----------------------------------------


def expected(
    persona: Persona, action: str, group: uuid.UUID | None, state: str, world: Matrix, method: str
) -> Expected:
    spec = ACTIONS[action]
    if persona.scopes == frozenset({"read"}) and method not in SAFE:
        return Expected(403, audit_entries=0)  # refused by authentication (module docstring)
    status = _decision(persona, action, group, state, world)
    if status != 200:
        return Expected(status)
    if action == "invitation.accept" and group in persona.holds:
        return Expected(409)  # allowed, but already a member: a business rule, not the policy
    row_action = spec.get("rows")
    visible = None
    if row_action is not None:
        visible = _decision(persona, row_action, group, state, world) == 200
    return Expected(SUCCESS.get(action, 200), visible=visible)


def _decision(
    persona: Persona, action: str, group: uuid.UUID | None, state: str, world: Matrix
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


def _holds(
    condition: str, persona: Persona, group: uuid.UUID | None, state: str, world: Matrix
) -> bool:
    if condition == "no_opposition":
        covered = state == "whole-group" or (
            state == "named" and group is not None and world.named[group] == persona.user_id
        )
        return not covered
    if condition == "invitee":
        return state == "to-caller"
    if condition == "recent_authentication":
        return persona.session
    raise AssertionError(f"the matrix does not know the condition {condition!r}")


# -- the world -------------------------------------------------------------------------------


@dataclass
class Matrix:
    world: World
    app: FastAPI
    keyring: Keyring
    a: uuid.UUID
    b: uuid.UUID
    coordinators: dict[uuid.UUID, uuid.UUID]
    seeds: dict[uuid.UUID, uuid.UUID]
    named: dict[uuid.UUID, uuid.UUID]
    founder_email: str
    personas: list[Persona]
    session_client: TestClient | None = None
    csrf: str = ""
    state_patients: dict[tuple[uuid.UUID, str], tuple[str, str]] = field(default_factory=dict)
    fresh: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**6)))

    def actor(self, user_id: uuid.UUID, group: uuid.UUID, role: Role) -> Actor:
        return Actor(
            kind="user",
            request=RequestInfo(request_id="policy-matrix-setup"),
            user_id=user_id,
            memberships={group: role},
            scopes=ALL_SCOPES,
        )

    def seed_patient(self, group: uuid.UUID, *, ins: str | None = None) -> tuple[str, str]:
        ins = ins or new_ins()
        with self.world.database.unit_of_work() as session:
            created = patients.register_patient(
                session=session,
                database=self.world.database,
                actor=self.actor(self.seeds[group], group, Role.CLINICIAN),
                settings=self.world.settings,
                keyring=self.keyring,
                group_id=group,
                resource=fr_patient(ins=ins),
            )
        return str(created.id), ins

    def seed_opposition(
        self, group: uuid.UUID, patient_id: str, named: uuid.UUID | None = None
    ) -> str:
        request = OppositionCreate.model_validate(
            {
                "scope": "professionals" if named else "group",
                "professionals": [str(named)] if named else [],
                "informed_at": (utcnow() - dt.timedelta(minutes=5)).isoformat(),
            }
        )
        with self.world.database.unit_of_work() as session:
            created = patients.record_opposition(
                session=session,
                database=self.world.database,
                actor=self.actor(self.seeds[group], group, Role.CLINICIAN),
                settings=self.world.settings,
                group_id=group,
                patient_id=uuid.UUID(patient_id),
                request=request,
            )
        return str(created.id)

    def seed_member(self, group: uuid.UUID) -> uuid.UUID:
        user = self.world.user(f"target{next(self.fresh)}@example.org", password=False)
        self.world.member(group, user, Role.CLINICIAN)
        return user

    def seed_invitation(self, group: uuid.UUID, email: str) -> tuple[str, str]:
        with self.world.database.unit_of_work() as session:
            created = groups.invite(
                session=session,
                database=self.world.database,
                actor=self.actor(self.coordinators[group], group, Role.COORDINATOR),
                settings=self.world.settings,
                group_id=group,
                request=InvitationCreate(email=email, role="clinician"),
            )
        return str(created.id), created.token

    def readdress(self, invitation_id: str, email: str) -> None:
        with self.world.database.unit_of_work() as session:
            session.execute(
                update(Invitation)
                .where(col(Invitation.id) == uuid.UUID(invitation_id))
                .values(email=email)
            )

    def membership_snapshot(self, user: uuid.UUID, group: uuid.UUID) -> dict[str, Any] | None:
        with self.world.database.session() as session:
            row = session.scalars(
                select(Membership).where(
                    col(Membership.user_id) == user, col(Membership.group_id) == group
                )
            ).first()
            return None if row is None else row.model_dump()

    def restore_membership(
        self, user: uuid.UUID, group: uuid.UUID, snapshot: dict[str, Any] | None
    ) -> None:
        with self.world.database.unit_of_work() as session:
            where = (col(Membership.user_id) == user, col(Membership.group_id) == group)
            if snapshot is None:
                session.execute(delete(Membership).where(*where))
            else:
                row = session.scalars(select(Membership).where(*where)).one()
                for key, value in snapshot.items():
                    setattr(row, key, value)
                session.add(row)

    def send(self, persona: Persona, method: str, url: str, body: Any = None) -> Any:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        if persona.session:
            assert self.session_client is not None
            headers = {} if method in SAFE else {"X-CSRF-Token": self.csrf}
            return self.session_client.request(method, url, headers=headers, **kwargs)
        if persona.operator:
            return self.world.call(
                method, url, None, headers={"X-Test-Persona": "operator"}, **kwargs
            )
        return self.world.call(method, url, persona.token, **kwargs)


def build(world: World, app: FastAPI) -> Matrix:
    users = {
        name: world.user(f"{name}@example.org")
        for name in (
            "founder",
            "seed-a",
            "seed-b",
            "clinician",
            "clinician-other",
            "removed",
            "suspended",
            "expired",
            "coordinator",
            "coordinator-session",
            "auditor",
            "operator",
            "read-only-token",
        )
    }
    a = world.group("Group A", users["coordinator"])
    b = world.group("Group B", users["founder"])
    for name in ("seed-a", "clinician", "removed", "suspended", "expired", "read-only-token"):
        world.member(a, users[name], Role.CLINICIAN)
    world.member(a, users["coordinator-session"], Role.COORDINATOR)
    world.member(a, users["auditor"], Role.AUDITOR)
    for name in ("seed-b", "clinician-other"):
        world.member(b, users[name], Role.CLINICIAN)
    world.set_membership(a, users["removed"], status="removed")
    world.set_membership(a, users["suspended"], status="suspended")
    world.set_membership(a, users["expired"], ends_at=past())

    def persona(name: str, **kwargs: Any) -> Persona:
        user = users.get(name)
        return Persona(
            name=name, user_id=user, email=world.emails.get(user) if user else None, **kwargs
        )

    personas = [
        persona("clinician", roles={a: "clinician"}, holds={a}),
        persona("clinician-other", roles={b: "clinician"}, holds={b}),
        persona("removed"),
        persona("suspended", holds={a}),
        persona("expired"),
        persona("coordinator", roles={a: "coordinator"}, holds={a}),
        persona("coordinator-session", roles={a: "coordinator"}, holds={a}, session=True),
        persona("auditor", roles={a: "auditor"}, holds={a}),
        persona("operator", operator=True),
        Persona(name="anonymous", anonymous=True),
        persona("read-only-token", roles={a: "clinician"}, holds={a}, scopes=frozenset({"read"})),
    ]
    for p in personas:
        if p.user_id is not None and not p.operator and not p.session:
            p.token = world.token(p.user_id, ",".join(sorted(p.scopes)))
    keyring = app.state.keyring
    matrix = Matrix(
        world=world,
        app=app,
        keyring=keyring,
        a=a,
        b=b,
        coordinators={a: users["coordinator"], b: users["founder"]},
        seeds={a: users["seed-a"], b: users["seed-b"]},
        named={a: users["clinician"], b: users["clinician-other"]},
        founder_email=world.emails[users["founder"]],
        personas=personas,
    )
    for group in (a, b):
        for state in OPPOSITION_STATES:
            pid, ins = matrix.seed_patient(group)
            if state == "whole-group":
                matrix.seed_opposition(group, pid)
            elif state == "named":
                matrix.seed_opposition(group, pid, named=matrix.named[group])
            matrix.state_patients[(group, state)] = (pid, ins)
    operator_id = users["operator"]

    def actor_with_operator(request: Request) -> Actor:
        if request.headers.get("x-test-persona") == "operator":
            return Actor(
                kind="user",
                request=request_info(request),
                user_id=operator_id,
                scopes=ALL_SCOPES,
                is_operator=True,
            )
        return get_actor(request)

    app.dependency_overrides[get_actor] = actor_with_operator
    return matrix


def login(matrix: Matrix, persona: Persona) -> None:
    client = TestClient(matrix.app, base_url="https://testserver")
    client.__enter__()
    assert persona.user_id is not None
    secret = matrix.world.totp_secrets[persona.user_id]
    otp = credentials.totp_code(secret, credentials.totp_step(utcnow()))
    response = client.post(
        "/api/v1/auth/login", json={"email": persona.email, "password": PASSWORD, "otp": otp}
    )
    assert response.status_code == 200, response.text
    matrix.session_client = client
    matrix.csrf = response.json()["csrf_token"]


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
    after: Callable[[], None] | None = None
    row: str | None = None  # for lists: the id the row check looks for
    label: str = ""


def cells_for(matrix: Matrix, persona: Persona, action: str) -> Iterator[Cell]:
    base = "/api/v1"
    if action == "group.list":
        yield Cell(persona, action, None, "-", "GET", f"{base}/groups")
        return
    if action == "group.create":
        body = {"name": f"New group {next(matrix.fresh)}", "coordinator": matrix.founder_email}
        yield Cell(persona, action, None, "-", "POST", f"{base}/groups", body)
        return
    for group in (matrix.a, matrix.b):
        g = f"{base}/groups/{group}"
        if action == "group.read":
            yield Cell(persona, action, group, "-", "GET", g)
        elif action == "group.update":
            yield Cell(persona, action, group, "-", "PATCH", g, {"description": "updated"})
        elif action == "member.list":
            yield Cell(persona, action, group, "-", "GET", f"{g}/members")
        elif action in {"member.update", "member.change_role", "member.remove"}:
            target = matrix.seed_member(group)
            if action == "member.remove":
                yield Cell(persona, action, group, "-", "DELETE", f"{g}/members/{target}")
            else:
                body = {"status": "suspended"} if action == "member.update" else {"role": "auditor"}
                yield Cell(persona, action, group, "-", "PATCH", f"{g}/members/{target}", body)
        elif action == "invitation.create":
            email = f"invitee{next(matrix.fresh)}@example.org"
            body = {"email": email, "role": "clinician"}
            yield Cell(persona, action, group, "-", "POST", f"{g}/members", body)
        elif action == "invitation.list":
            yield Cell(persona, action, group, "-", "GET", f"{g}/invitations")
        elif action == "invitation.revoke":
            invitation, _ = matrix.seed_invitation(group, f"r{next(matrix.fresh)}@example.org")
            yield Cell(persona, action, group, "-", "DELETE", f"{g}/invitations/{invitation}")
        elif action == "invitation.accept":
            for state in INVITATION_STATES:
                if state == "to-caller" and persona.email is None:
                    continue  # nobody to address it to
                invitation, token = matrix.seed_invitation(
                    group, f"someone{next(matrix.fresh)}@example.org"
                )
                if state == "to-caller":
                    # Straight into the table: the service refuses to invite a member.
                    matrix.readdress(invitation, persona.email or "")
                after = None
                if persona.user_id is not None:
                    user, snapshot = (
                        persona.user_id,
                        matrix.membership_snapshot(persona.user_id, group),
                    )

                    def after(
                        u: uuid.UUID = user,
                        gr: uuid.UUID = group,
                        s: dict[str, Any] | None = snapshot,
                    ) -> None:
                        matrix.restore_membership(u, gr, s)

                yield Cell(
                    persona,
                    action,
                    group,
                    state,
                    "POST",
                    f"{base}/invitations/{token}/accept",
                    after=after,
                )
        elif action == "patient.create":
            yield Cell(
                persona, action, group, "-", "POST", f"{g}/patients", fr_patient(ins=new_ins())
            )
        elif action in {"patient.read", "patient.search", "opposition.list"}:
            for state in OPPOSITION_STATES:
                pid, ins = matrix.state_patients[(group, state)]
                if action == "patient.read":
                    yield Cell(persona, action, group, state, "GET", f"{g}/patients/{pid}")
                elif action == "patient.search":
                    url = f"{g}/patients?identifier={INS_TEST}|{ins}"
                    yield Cell(persona, action, group, state, "GET", url, row=pid)
                else:
                    yield Cell(
                        persona, action, group, state, "GET", f"{g}/patients/{pid}/oppositions"
                    )
        elif action == "patient.update":
            # Only the FHIR base updates a patient (PUT, hdsapp.fhir_api).
            for state in OPPOSITION_STATES:
                pid, ins = matrix.state_patients[(group, state)]
                body = {**fr_patient(ins=ins), "id": pid}
                url = f"/fhir/{group}/Patient/{pid}"
                yield Cell(persona, action, group, state, "PUT", url, body)
        elif action == "opposition.create":
            pid, _ = matrix.seed_patient(group)
            body = {"scope": "group", "informed_at": utcnow().isoformat()}
            yield Cell(persona, action, group, "-", "POST", f"{g}/patients/{pid}/oppositions", body)
        elif action == "opposition.lift":
            pid, _ = matrix.seed_patient(group)
            oid = matrix.seed_opposition(group, pid)
            yield Cell(
                persona,
                action,
                group,
                "-",
                "PATCH",
                f"{g}/patients/{pid}/oppositions/{oid}",
                {"status": "inactive"},
            )
        else:
            raise AssertionError(f"the matrix does not drive {action!r}")


def check(matrix: Matrix, cell: Cell) -> list[str]:
    want = expected(cell.persona, cell.action, cell.group, cell.state, matrix, cell.method)
    before = matrix.world.audit_count()
    response = matrix.send(cell.persona, cell.method, cell.url, cell.body)
    entries = matrix.world.audit_count() - before
    if cell.after is not None:
        cell.after()
    where = (
        f"{cell.persona.name} {cell.action} "
        f"{'A' if cell.group == matrix.a else 'B' if cell.group == matrix.b else '-'} "
        f"{cell.state}"
    )
    problems = []
    if response.status_code != want.status:
        problems.append(
            f"{where}: {response.status_code}, table says {want.status} ({response.text[:160]})"
        )
    if entries != want.audit_entries:
        problems.append(f"{where}: {entries} audit entries, expected {want.audit_entries}")
    if want.visible is not None and response.status_code == 200:
        body = response.json()
        ids = {item["id"] for item in body["items"]}
        if cell.action == "group.list":
            seen = ids & {str(matrix.a), str(matrix.b)}
            wanted = {
                str(g)
                for g in (matrix.a, matrix.b)
                if _decision(cell.persona, "group.read", g, "-", matrix) == 200
            }
            if seen != wanted:
                problems.append(f"{where}: lists {sorted(seen)}, table says {sorted(wanted)}")
        else:
            wanted_rows = {cell.row} if want.visible and cell.row else set()
            if ids != wanted_rows or body["total"] != len(wanted_rows):
                problems.append(
                    f"{where}: rows {sorted(ids)} (total {body['total']}), "
                    f"table says {sorted(wanted_rows)}"
                )
    return problems


@pytest.fixture
def matrix(world: World, app: FastAPI) -> Iterator[Matrix]:
    built = build(world, app)
    session_persona = next(p for p in built.personas if p.session)
    login(built, session_persona)
    yield built
    if built.session_client is not None:
        built.session_client.__exit__(None, None, None)
    app.dependency_overrides.clear()


def test_every_cell_answers_as_the_table_says(matrix: Matrix, backend: str) -> None:
    problems: list[str] = []
    count = 0
    for action in HTTP_ACTIONS:
        for persona in matrix.personas:
            for cell in cells_for(matrix, persona, action):
                problems.extend(check(matrix, cell))
                count += 1
    MATRIX_CELLS[backend] = count
    print(f"\npolicy matrix ({backend}): {count} cells")
    assert not problems, f"{len(problems)} of {count} cells disagree:\n" + "\n".join(problems[:60])


def test_the_matrix_covers_the_table() -> None:
    """Every action of this issue is driven over HTTP (or is the operator command), and every
    condition of their rules is one the matrix interprets."""
    for name, spec in ACTIONS.items():
        if spec["resource"] in THIS_ISSUE:
            assert name in HTTP_ACTIONS or spec["http"].startswith("cli"), name
    for rule in RULES:
        if ACTIONS[rule["action"]]["resource"] not in THIS_ISSUE:
            continue  # other domains' actions (threads, audit) have matrices of their own
        for condition in rule.get("when", []):
            assert condition in {"no_opposition", "invitee", "recent_authentication"}
