"""The authorization matrix through the FHIR base (``/fhir/{gid}/``, hdsapp.fhir_api).

The FHIR interactions call the same use cases as /api/v1 and declare the same policy actions,
so the same table decides: every persona x every FHIR interaction (mapped to its action by the
registry) x the same or the other group x the resource states is driven over HTTP with real
authentication and compared with ``rules.toml`` read independently (``test_matrix.expected``):
the status, the rows of a search (Bundle entries and ``total``), an OperationOutcome for every
refusal, and exactly one audit entry per request.

The types over case threads (CareTeam, Communication, Task) are driven in the threads matrix's
world (tests/policy/test_matrix_threads.py: the caller's standing in the thread — participant,
removed, outsider, break-the-glass, closed, oppositions) and compared with the same table read
the same way (``test_matrix_threads.decision``); a search's row must be listed exactly when the
table lets the caller read it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from hdsapp.core.db import utcnow
from hdsapp.fhir_api.registry import registry
from hdsapp.models.audit_entry import AuditEntry
from hdsapp.models.message import Message
from hdsapp.patients.consent import PRIOR_INFORMATION
from tests.patients.data import fr_patient, new_ins
from tests.policy.cells import MATRIX_CELLS
from tests.policy.test_matrix import (
    OPPOSITION_STATES,
    Cell,
    Expected,
    Matrix,
    Persona,
    expected,
    matrix,
)
from tests.policy.test_matrix_threads import SAFE, Seeded, Threads, decision, threads_world
from tests.policy.test_matrix_threads import Cell as ThreadCell

__all__ = ["matrix", "threads_world"]

FHIR_JSON = "application/fhir+json"
THREAD_TYPES = frozenset({"CareTeam", "Communication", "Task"})


def fhir_cells(matrix: Matrix, persona: Persona, resource_type: str, code: str) -> Iterator[Cell]:
    operation = registry()[resource_type].definition.operation(code)  # type: ignore[arg-type]
    assert operation is not None
    action = operation.action
    for group in (matrix.a, matrix.b):
        base = f"/fhir/{group}"
        if (resource_type, code) == ("Patient", "read"):
            for state in OPPOSITION_STATES:
                pid, _ = matrix.state_patients[(group, state)]
                yield Cell(persona, action, group, state, "GET", f"{base}/Patient/{pid}")
        elif (resource_type, code) == ("Patient", "search-type"):
            for state in OPPOSITION_STATES:
                pid, ins = matrix.state_patients[(group, state)]
                url = f"{base}/Patient?identifier={ins}"
                yield Cell(persona, action, group, state, "GET", url, row=pid)
        elif (resource_type, code) == ("Patient", "create"):
            body = fr_patient(ins=new_ins())
            yield Cell(persona, action, group, "-", "POST", f"{base}/Patient", body)
        elif (resource_type, code) == ("Patient", "update"):
            for state in OPPOSITION_STATES:
                pid, ins = matrix.state_patients[(group, state)]
                body = {**fr_patient(ins=ins), "id": pid}
                yield Cell(persona, action, group, state, "PUT", f"{base}/Patient/{pid}", body)
        elif (resource_type, code) == ("Organization", "read"):
            yield Cell(persona, action, group, "-", "GET", f"{base}/Organization/{group}")
        elif (resource_type, code) == ("Practitioner", "read"):
            member = matrix.seeds[group]
            yield Cell(persona, action, group, "-", "GET", f"{base}/Practitioner/{member}")
        elif (resource_type, code) == ("Practitioner", "search-type"):
            member = matrix.seeds[group]
            yield Cell(persona, action, group, "-", "GET", f"{base}/Practitioner?_id={member}")
        elif (resource_type, code) == ("Consent", "read"):
            pid, _ = matrix.seed_patient(group)
            oid = matrix.seed_opposition(group, pid)
            yield Cell(persona, action, group, "-", "GET", f"{base}/Consent/{oid}")
        elif (resource_type, code) == ("Consent", "search-type"):
            pid, _ = matrix.seed_patient(group)
            yield Cell(persona, action, group, "-", "GET", f"{base}/Consent?patient={pid}")
        elif (resource_type, code) == ("Consent", "create"):
            pid, _ = matrix.seed_patient(group)
            body = consent(pid)
            yield Cell(persona, action, group, "-", "POST", f"{base}/Consent", body)
        elif (resource_type, code) == ("AuditEvent", "read"):
            event = last_event(matrix, group)
            yield Cell(persona, action, group, "-", "GET", f"{base}/AuditEvent/{event}")
        elif (resource_type, code) == ("AuditEvent", "search-type"):
            yield Cell(persona, action, group, "-", "GET", f"{base}/AuditEvent?_count=1")
        else:
            raise AssertionError(f"the FHIR matrix does not drive {resource_type} {code}")


def consent(patient_id: str) -> dict[str, Any]:
    informed = (utcnow() - dt.timedelta(minutes=5)).isoformat()
    return {
        "resourceType": "Consent",
        "extension": [
            {
                "url": PRIOR_INFORMATION,
                "extension": [{"url": "informedAt", "valueDateTime": informed}],
            }
        ],
        "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "provision": {"type": "deny"},
    }


def last_event(matrix: Matrix, group: uuid.UUID) -> str:
    with matrix.world.database.session() as session:
        statement = (
            select(col(AuditEntry.event_id))
            .where(col(AuditEntry.group_id) == group)
            .order_by(col(AuditEntry.position).desc())
            .limit(1)
        )
        return str(session.execute(statement).scalar_one())


def check(matrix: Matrix, cell: Cell) -> list[str]:
    want = expected(cell.persona, cell.action, cell.group, cell.state, matrix, cell.method)
    before = matrix.world.audit_count()
    response = matrix.send(cell.persona, cell.method, cell.url, cell.body)
    entries = matrix.world.audit_count() - before
    where = (
        f"{cell.persona.name} {cell.method} {cell.url.split('/', 3)[-1].split('/', 1)[-1]}"
        f" {'A' if cell.group == matrix.a else 'B'} {cell.state}"
    )
    problems = []
    if response.status_code != want.status:
        problems.append(
            f"{where}: {response.status_code}, table says {want.status} ({response.text[:160]})"
        )
    if entries != want.audit_entries:
        problems.append(f"{where}: {entries} audit entries, expected {want.audit_entries}")
    if response.status_code >= 400:
        body = response.json()
        if not response.headers["content-type"].startswith(FHIR_JSON) or (
            body.get("resourceType") != "OperationOutcome"
        ):
            problems.append(f"{where}: the refusal is not an OperationOutcome")
    if want.visible is not None and response.status_code == 200:
        bundle = response.json()
        ids = {entry["resource"]["id"] for entry in bundle.get("entry", [])}
        wanted = {cell.row} if want.visible and cell.row else set()
        if ids != wanted or bundle["total"] != len(wanted):
            problems.append(f"{where}: entries {sorted(ids)}, table says {sorted(wanted)}")
    return problems


def test_every_fhir_cell_answers_as_the_table_says(matrix: Matrix, backend: str) -> None:
    problems: list[str] = []
    count = 0
    for resource_type, entry in sorted(registry().items()):
        if resource_type in THREAD_TYPES:
            continue  # below, in the threads matrix's world
        for operation in entry.definition.operations:
            for persona in matrix.personas:
                for cell in fhir_cells(matrix, persona, resource_type, operation.code):
                    problems.extend(check(matrix, cell))
                    count += 1
    MATRIX_CELLS[f"{backend} fhir"] = count
    print(f"\nFHIR policy matrix ({backend}): {count} cells")
    assert not problems, f"{len(problems)} of {count} cells disagree:\n" + "\n".join(problems[:60])


# -- CareTeam, Communication, Task ---------------------------------------------------------


@dataclass(frozen=True)
class ThreadFhirCell:
    """A FHIR interaction on a seeded thread: ``gate`` is the action the table decides the
    request by; ``rows`` (searches) the action a listed row must pass, ``row`` its id."""

    cell: ThreadCell
    gate: str
    rows: str | None = None
    row: str | None = None


def seed_message(world: Threads, thread: str) -> str:
    with world.world.database.session() as session:
        statement = select(col(Message.id)).where(
            col(Message.thread_id) == uuid.UUID(thread), col(Message.client_id) == "seed"
        )
        return str(session.execute(statement).scalar_one())


def thread_cells(
    world: Threads, persona: Persona, resource_type: str, code: str
) -> Iterator[ThreadFhirCell]:
    for group in (world.matrix.a, world.matrix.b):
        base = f"/fhir/{group}"
        for state in world.states_of(persona, group):
            seeded = world.seeded[(group, persona.name, state)]
            yield from _thread_cells(
                world, persona, group, state, seeded, base, resource_type, code
            )


def _thread_cells(
    world: Threads,
    persona: Persona,
    group: uuid.UUID,
    state: str,
    seeded: Seeded,
    base: str,
    resource_type: str,
    code: str,
) -> Iterator[ThreadFhirCell]:
    def cell(method: str, url: str, body: Any = None) -> ThreadCell:
        return ThreadCell(persona, f"{resource_type}.{code}", group, state, method, url, body)

    t = seeded.thread
    key = (resource_type, code)
    if key == ("CareTeam", "read"):
        yield ThreadFhirCell(cell("GET", f"{base}/CareTeam/{t}"), "thread.read")
    elif key == ("CareTeam", "search-type"):
        url = f"{base}/CareTeam?_id={t}"
        yield ThreadFhirCell(cell("GET", url), "thread.list", "thread.read", t)
    elif key == ("Communication", "read"):
        mid = seed_message(world, t)
        yield ThreadFhirCell(cell("GET", f"{base}/Communication/{mid}"), "message.list")
    elif key == ("Communication", "search-type"):
        mid = seed_message(world, t)
        url = f"{base}/Communication?thread=CareTeam/{t}"
        yield ThreadFhirCell(cell("GET", url), "message.list", "message.list", mid)
        url = f"{base}/Communication?patient=Patient/{seeded.patient}&_count=100"
        yield ThreadFhirCell(cell("GET", url), "thread.list", "message.list", mid)
    elif key == ("Communication", "create"):
        body = {
            "resourceType": "Communication",
            "status": "completed",
            "about": [{"reference": f"CareTeam/{t}"}],
            "payload": [{"contentString": "matrice"}],
        }
        yield ThreadFhirCell(cell("POST", f"{base}/Communication", body), "message.post")
    elif key == ("Task", "read"):
        yield ThreadFhirCell(cell("GET", f"{base}/Task/{seeded.task}"), "task.read")
    elif key == ("Task", "search-type"):
        url = f"{base}/Task?patient=Patient/{seeded.patient}&_count=100"
        yield ThreadFhirCell(cell("GET", url), "thread.list", "task.read", seeded.task)
    elif key in {("Task", "create"), ("Task", "update")}:
        task: dict[str, Any] = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "description": "matrice",
            "focus": {"reference": f"CareTeam/{t}"},
        }
        if code == "create":
            yield ThreadFhirCell(cell("POST", f"{base}/Task", task), "task.create")
        else:
            url = f"{base}/Task/{seeded.task}"
            yield ThreadFhirCell(cell("PUT", url, {**task, "id": seeded.task}), "task.update")
    else:
        raise AssertionError(f"the FHIR matrix does not drive {resource_type} {code}")


def thread_expected(world: Threads, fhir: ThreadFhirCell) -> Expected:
    cell = fhir.cell
    if cell.persona.scopes == frozenset({"read"}) and cell.method not in SAFE:
        return Expected(403, audit_entries=0)  # refused by authentication
    status = decision(cell.persona, fhir.gate, cell.group, cell.state, world)
    if status != 200:
        return Expected(status)
    visible = None
    if fhir.rows is not None:
        visible = decision(cell.persona, fhir.rows, cell.group, cell.state, world) == 200
    return Expected(201 if cell.method == "POST" else 200, visible=visible)


def thread_check(world: Threads, fhir: ThreadFhirCell) -> list[str]:
    cell = fhir.cell
    want = thread_expected(world, fhir)
    before = world.world.audit_count()
    response = world.send(cell.persona, cell)
    entries = world.world.audit_count() - before
    group = "A" if cell.group == world.matrix.a else "B"
    where = f"{cell.persona.name} {cell.method} {cell.action} {group} {cell.state}"
    problems = []
    if response.status_code != want.status:
        problems.append(
            f"{where}: {response.status_code}, table says {want.status} ({response.text[:160]})"
        )
    if entries != want.audit_entries:
        problems.append(f"{where}: {entries} audit entries, expected {want.audit_entries}")
    if response.status_code >= 400 and (
        not response.headers["content-type"].startswith(FHIR_JSON)
        or response.json().get("resourceType") != "OperationOutcome"
    ):
        problems.append(f"{where}: the refusal is not an OperationOutcome")
    if want.visible is not None and response.status_code == 200:
        ids = {entry["resource"]["id"] for entry in response.json().get("entry", [])}
        if (fhir.row in ids) != want.visible:
            problems.append(f"{where}: row listed {fhir.row in ids}, table says {want.visible}")
    return problems


def test_every_fhir_thread_cell_answers_as_the_table_says(
    threads_world: Threads, backend: str
) -> None:
    problems: list[str] = []
    count = 0
    for resource_type in sorted(THREAD_TYPES):
        for operation in registry()[resource_type].definition.operations:
            for persona in threads_world.personas:
                for fhir in thread_cells(threads_world, persona, resource_type, operation.code):
                    problems.extend(thread_check(threads_world, fhir))
                    count += 1
    MATRIX_CELLS[f"{backend} fhir/threads"] = count
    print(f"\nFHIR threads policy matrix ({backend}): {count} cells")
    assert not problems, f"{len(problems)} of {count} cells disagree:\n" + "\n".join(problems[:60])
