"""The auditor's API: queries, exports, checkpoints, proofs — and who may call them."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent
from sqlmodel import col, select

from audit import b64
from audit.checkpoint import open_checkpoint
from audit.export import parse_export
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit.note import Verifier
from audit.verify import verify_export
from hdsapp.config import Settings
from hdsapp.core.actor import Role, Scope, anonymous
from hdsapp.core.db import Database, utcnow
from hdsapp.models.audit_checkpoint import AuditCheckpoint
from hdsapp.models.audit_entry import AuditEntry
from tests.auditing.support import (
    AUDITOR_ID,
    CLINICIAN_ID,
    GROUP,
    OTHER_GROUP,
    PATIENT,
    REQUEST,
    Caller,
    api,
    auditor,
    caller,
    clinician,
    seed,
    sign,
    signer_for,
    user,
)
from tests.conftest import REPO_ROOT

__all__ = ["api", "caller"]  # fixtures

AUDIT = f"/api/v1/groups/{GROUP}/audit"


def rows(database: Database) -> list[AuditEntry]:
    with database.session() as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.position))).all())


def last_event(database: Database) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(rows(database)[-1].event)
    return event


# -- query -------------------------------------------------------------------------------------


def test_an_auditor_reads_the_groups_log_and_is_logged(api: TestClient, database: Database) -> None:
    seed(database, 10)
    response = api.get(AUDIT)
    assert response.status_code == 200, response.text
    page = response.json()
    assert [i["index"] for i in page["items"]] == [8, 6, 4, 2, 0]
    assert page["next_cursor"] is None
    for item in page["items"]:
        assert item["patient"] == str(PATIENT)
        assert item["actor"] == str(CLINICIAN_ID)
        AuditEvent.model_validate(item["event"], strict=True)
    # The query is itself an entry, of this group, by the auditor.
    entry = rows(database)[-1]
    assert (entry.position, entry.kind, entry.outcome) == (10, "audit-query", 0)
    assert (entry.group_id, entry.actor_id) == (GROUP, AUDITOR_ID)
    assert json.loads(entry.event)["type"]["code"] == "110101"
    assert api.get(AUDIT).json()["items"][0]["kind"] == "audit-query"


def test_pages_follow_the_cursor(api: TestClient, database: Database) -> None:
    seed(database, 20)
    seen: list[int] = []
    url = f"{AUDIT}?limit=3&action=R"
    while True:
        page = api.get(url).json()
        seen += [i["index"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"{AUDIT}?limit=3&action=R&cursor={page['next_cursor']}"
    assert seen == list(range(18, -1, -2))


def test_filters(api: TestClient, database: Database) -> None:
    seed(database, 12)

    def indexes(query: str) -> list[int]:
        response = api.get(f"{AUDIT}?{query}")
        assert response.status_code == 200, response.text
        return [i["index"] for i in response.json()["items"] if i["kind"] == "read"]

    assert indexes(f"patient={PATIENT}") == [10, 8, 6, 4, 2, 0]
    assert indexes(f"patient=Patient/{PATIENT}") == [10, 8, 6, 4, 2, 0]
    assert indexes(f"patient={uuid.uuid4()}") == []
    assert indexes(f"actor={CLINICIAN_ID}") == [10, 8, 6, 4, 2, 0]
    assert indexes("outcome=4") == [8, 2]
    assert indexes("action=C") == []
    now = utcnow()
    since = (now - dt.timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    assert indexes(f"since={since}") == [10, 8, 6, 4, 2, 0]
    assert indexes(f"until={since}") == []
    # The auditor's own queries are entries of the group, with the query string.
    queries = [e for e in rows(database) if e.kind == "audit-query"]
    assert len(queries) == 8
    assert queries[0].patient_id == PATIENT
    recorded_query = next(
        e for e in json.loads(queries[0].event)["entity"] if e["role"]["code"] == "24"
    )
    assert b64.decode(recorded_query["query"]).decode() == f"patient={PATIENT}"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("since=2025-01-01T00:00:00", 422),  # no zone
        ("outcome=3", 422),
        ("action=X", 422),
        ("limit=1000", 422),
        ("cursor=abc", 400),
        ("patient=Martin", 400),
    ],
)
def test_bad_queries_are_refused(api: TestClient, query: str, status: int) -> None:
    response = api.get(f"{AUDIT}?{query}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


def test_a_non_auditor_is_refused_and_the_attempt_is_logged(
    api: TestClient, caller: Caller, database: Database
) -> None:
    seed(database, 4)
    caller.actor = clinician()
    response = api.get(AUDIT)
    assert response.status_code == 403
    assert "Martin" not in response.text
    entry = rows(database)[-1]
    assert (entry.kind, entry.outcome, entry.actor_id) == ("audit-query", 4, CLINICIAN_ID)
    assert json.loads(entry.event)["outcomeDesc"] == "policy:role"
    # An auditor of another group neither: this group is not theirs to know of.
    caller.actor = user(AUDITOR_ID, {OTHER_GROUP: Role.AUDITOR})
    assert api.get(AUDIT).status_code == 404
    assert last_event(database)["outcomeDesc"] == "policy:not-in-group"
    # A token needs the audit scope.
    caller.actor = auditor(kind="token", scopes=frozenset({Scope.READ}))
    assert api.get(AUDIT).status_code == 403
    assert last_event(database)["outcomeDesc"] == "policy:insufficient-scope"
    caller.actor = anonymous(REQUEST)
    assert api.get(AUDIT).status_code == 401
    assert last_event(database)["outcomeDesc"] == "policy:unauthenticated"
    assert [e.outcome for e in rows(database)[4:]] == [4, 4, 4, 4]


# -- export ------------------------------------------------------------------------------------


def test_the_export_verifies_offline(
    api: TestClient, database: Database, settings: Settings, tmp_path: Path
) -> None:
    signer = signer_for(settings)
    seed(database, 9)
    sign(database, signer)
    seed(database, 4)  # after the checkpoint: not exported yet
    response = api.get(f"/api/v1/groups/{GROUP}/audit/export")
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    document = response.content
    export = parse_export(document)
    assert (export.start, export.end) == (0, 9)
    report = verify_export(export, [signer.verifier])
    assert report.ok, report.error
    assert report.withheld == 4  # the other group's entries in the range
    assert len(export.events) == 5
    for _, event in export.events:
        assert any(
            e.get("what", {}).get("reference") == f"Organization/{GROUP}" for e in event["entity"]
        )
    # The export is an entry of its own.
    assert (rows(database)[-1].kind, rows(database)[-1].outcome) == ("export", 0)
    # The standalone verifier, as an auditor would run it.
    path = tmp_path / "export.json"
    path.write_bytes(document)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "audit",
            "verify",
            str(path),
            "--key",
            str(signer.verifier),
            "--json",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == {"ok": True, "entries": 9, "checkpoint_size": 9}


def test_the_export_window_and_later_checkpoints(
    api: TestClient, database: Database, settings: Settings
) -> None:
    signer = signer_for(settings)
    seed(database, 6)
    sign(database, signer)
    time.sleep(0.005)  # entries keep milliseconds: keep them apart from the boundary
    middle = utcnow().replace(microsecond=0) + dt.timedelta(seconds=1)
    time.sleep((middle - utcnow()).total_seconds() + 0.005)
    seed(database, 6)
    sign(database, signer)
    since = middle.isoformat().replace("+00:00", "Z")
    export = parse_export(api.get(f"/api/v1/groups/{GROUP}/audit/export?since={since}").content)
    assert (export.start, export.end) == (6, 11)
    assert len(export.checkpoints) == 1
    # A window that ends early is covered by the first checkpoint, proven consistent with
    # the latest.
    until = middle.isoformat().replace("+00:00", "Z")
    export = parse_export(api.get(f"/api/v1/groups/{GROUP}/audit/export?until={until}").content)
    assert (export.start, export.end) == (0, 5)
    assert len(export.checkpoints) == 2
    assert verify_export(export, [signer.verifier]).ok


def test_the_export_needs_a_recent_authentication(
    api: TestClient, caller: Caller, database: Database, settings: Settings
) -> None:
    sign(database, signer_for(settings))
    caller.actor = auditor(authenticated_at=utcnow() - dt.timedelta(hours=1))
    response = api.get(f"/api/v1/groups/{GROUP}/audit/export")
    assert response.status_code == 403
    assert response.json()["type"].endswith("step-up-required")
    entry = rows(database)[-1]
    assert (entry.kind, entry.outcome) == ("export", 4)
    assert json.loads(entry.event)["outcomeDesc"] == "policy:step-up-required"
    # Tokens never pass the step-up.
    caller.actor = auditor(kind="token")
    assert api.get(f"/api/v1/groups/{GROUP}/audit/export").status_code == 403
    caller.actor = clinician()
    assert api.get(f"/api/v1/groups/{GROUP}/audit/export").status_code == 403


def test_no_export_before_the_first_checkpoint(api: TestClient, database: Database) -> None:
    seed(database, 2)
    response = api.get(f"/api/v1/groups/{GROUP}/audit/export")
    assert response.status_code == 503
    assert response.json()["type"].endswith("no-checkpoint")


# -- checkpoints and proofs ----------------------------------------------------------------------


def test_checkpoint_and_verifier_key(
    api: TestClient, database: Database, settings: Settings
) -> None:
    assert api.get("/api/v1/audit/checkpoint").status_code == 404
    signer = signer_for(settings)
    seed(database, 7)
    sign(database, signer)
    key = api.get("/api/v1/audit/verifier-key")
    assert key.status_code == 200
    assert key.headers["content-type"].startswith("text/plain")
    assert key.text == str(signer.verifier)
    note = api.get("/api/v1/audit/checkpoint")
    assert note.headers["content-type"].startswith("text/plain")
    checkpoint, _ = open_checkpoint(note.text, [Verifier.parse(key.text)])
    assert checkpoint.size == 7
    assert checkpoint.origin == settings.effective_audit_origin


def _checkpoint_roots(database: Database) -> dict[int, bytes]:
    with database.session() as session:
        return {c.tree_size: c.root_hash for c in session.exec(select(AuditCheckpoint)).all()}


def test_inclusion_proofs_lead_to_the_signed_root(
    api: TestClient, database: Database, settings: Settings
) -> None:
    signer = signer_for(settings)
    seed(database, 13)
    sign(database, signer)
    root = _checkpoint_roots(database)[13]
    stored = rows(database)
    for index in range(13):
        body = api.get(f"/api/v1/audit/proof/inclusion?index={index}").json()
        assert (body["index"], body["tree_size"]) == (index, 13)
        leaf = b64.decode(body["leaf_hash"])
        assert leaf == leaf_hash(stored[index].leaf)
        verify_inclusion(index, 13, leaf, [b64.decode(h) for h in body["proof"]], root)
    # Against an older size too (no checkpoint needed: any size up to the tree's).
    body = api.get("/api/v1/audit/proof/inclusion?index=2&tree_size=5").json()
    assert len(body["proof"]) == 3


def test_consistency_proofs_between_checkpoints(
    api: TestClient, database: Database, settings: Settings
) -> None:
    signer = signer_for(settings)
    sizes = []
    for count in (3, 5, 1, 8):
        seed(database, count)
        sizes.append(sign(database, signer))
    roots = _checkpoint_roots(database)
    for first in sizes:
        for second in sizes:
            if first is None or second is None or first > second:
                continue
            body = api.get(f"/api/v1/audit/proof/consistency?first={first}&second={second}")
            assert body.status_code == 200
            proof = [b64.decode(h) for h in body.json()["proof"]]
            verify_consistency(first, second, roots[first], roots[second], proof)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("inclusion?index=5", "index must be between 0 and 4"),
        ("inclusion?index=-1", "index must be between 0 and 4"),
        ("inclusion?index=0&tree_size=6", "tree_size must be between 1 and 5"),
        ("inclusion?index=0&tree_size=0", "tree_size must be between 1 and 5"),
        ("inclusion?index=3&tree_size=2", "index must be between 0 and 1"),
        ("consistency?first=0&second=3", "first must be between 1 and 3"),
        ("consistency?first=4&second=3", "first must be between 1 and 3"),
        ("consistency?first=1&second=99", "second must be between 1 and 5"),
        ("consistency?first=1&second=99999999999999999999999", "second must be between 1 and 5"),
    ],
)
def test_out_of_range_proofs_name_the_valid_range(
    api: TestClient, database: Database, settings: Settings, query: str, named: str
) -> None:
    seed(database, 5)
    sign(database, signer_for(settings))
    response = api.get(f"/api/v1/audit/proof/{query}")
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(named)
    assert "valid_range" in response.json()


def test_proofs_of_an_empty_log(api: TestClient) -> None:
    response = api.get("/api/v1/audit/proof/inclusion?index=0")
    assert response.status_code == 400
    assert "empty" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/audit/checkpoint",
        "/api/v1/audit/verifier-key",
        "/api/v1/audit/proof/inclusion?index=0",
        "/api/v1/audit/proof/consistency?first=1&second=1",
    ],
)
def test_hashes_are_for_authenticated_callers_only(
    api: TestClient, caller: Caller, database: Database, settings: Settings, path: str
) -> None:
    seed(database, 2)
    sign(database, signer_for(settings))
    caller.actor = clinician()
    assert api.get(path).status_code == 200
    caller.actor = anonymous(REQUEST)
    assert api.get(path).status_code == 401
