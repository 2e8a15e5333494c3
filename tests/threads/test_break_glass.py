"""Break-the-glass: a clinician of the group reads a thread they are not in, for a limited time,
read-only, after a stated reason and a fresh authentication; audited (ETREAT) and notified;
never across groups, never over an opposition."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlmodel import col

from hdsapp.core.db import utcnow
from hdsapp.models.break_glass_grant import BreakGlassGrant
from tests.threads.conftest import Ward


@pytest.fixture
def logins() -> frozenset[str]:
    return frozenset({"pharma", "nurse", "coord", "auditor", "outsider"})


REASON = "Patient inconscient aux urgences, besoin des antécédents"


def glass(ward: Ward, who: str, tid: str, reason: str = REASON) -> Any:
    return ward.call("POST", who, f"/api/v1/threads/{tid}/break-glass", json={"reason": reason})


def events(ward: Ward, n: int) -> list[dict[str, Any]]:
    return [json.loads(e["event"]) for e in ward.world.audit_tail(n)]


def test_break_the_glass_reads_for_a_limited_time(ward: Ward) -> None:
    tid = ward.open(participants=("nurse",))["id"]
    ward.post("doc", tid, "Allergie pénicilline")
    aid_task = ward.call(
        "POST", "doc", f"/api/v1/threads/{tid}/tasks", json={"description": "Rappeler"}
    ).json()["id"]
    assert ward.messages("pharma", tid).status_code == 403
    ward.login("pharma")
    before = ward.world.audit_count()
    granted = glass(ward, "pharma", tid)
    assert granted.status_code == 201, granted.text
    grant = granted.json()
    expires = dt.datetime.fromisoformat(grant["expires_at"])
    assert dt.timedelta(minutes=59) < expires - utcnow() <= dt.timedelta(minutes=60)
    assert ward.world.audit_count() == before + 1
    (event,) = events(ward, 1)
    assert event["subtype"] == [
        {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110127",
            "display": "Emergency Override Started",
        }
    ]
    purpose = event["purposeOfEvent"][0]
    assert purpose["coding"][0]["code"] == "ETREAT"
    assert purpose["text"] == REASON
    assert "urn:hdsapp:legal-basis:emergency-access" in event["agent"][0]["policy"]
    # The coordinators are told.
    with ward.world.database.session() as session:
        notified = session.execute(text("SELECT recipient_id, kind FROM notification_event")).all()
    assert [(str(r).replace("-", ""), k) for r, k in notified] == [
        (ward.users["coord"].hex, "break-glass")
    ]
    # Read-only access, every read recorded as an emergency read.
    for url in (
        f"/api/v1/threads/{tid}",
        f"/api/v1/threads/{tid}/messages",
        f"/api/v1/threads/{tid}/tasks",
        f"/api/v1/threads/{tid}/participants",
        f"/api/v1/tasks/{aid_task}",
    ):
        read = ward.call("GET", "pharma", url)
        assert read.status_code == 200, (url, read.text)
        (entry,) = events(ward, 1)
        assert entry["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT", url
        assert grant["id"] in entry["purposeOfEvent"][0]["text"]
    assert ward.call("GET", "pharma", f"/api/v1/threads/{tid}").json()["access"] == "break-glass"
    listed = ward.call("GET", "pharma", f"/api/v1/groups/{ward.gid}/threads").json()["items"]
    assert [t["id"] for t in listed] == [tid]
    assert events(ward, 1)[0]["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    assert ward.post("pharma", tid, "je lis seulement").status_code == 403
    assert (
        ward.call("POST", "pharma", f"/api/v1/threads/{tid}/read", json={"seq": 1}).status_code
        == 403
    )
    # When it expires, access ends.
    with ward.world.database.unit_of_work() as session:
        session.execute(
            update(BreakGlassGrant)
            .where(col(BreakGlassGrant.id) == uuid.UUID(grant["id"]))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    assert ward.messages("pharma", tid).status_code == 403
    assert ward.call("GET", "pharma", f"/api/v1/groups/{ward.gid}/threads").json()["items"] == []


def test_break_the_glass_needs_a_reason_a_fresh_login_and_a_clinician(ward: Ward) -> None:
    tid = ward.open(participants=("nurse",))["id"]
    # A token is never a fresh authentication.
    stale = glass(ward, "pharma", tid)
    assert stale.status_code == 403
    assert stale.json()["type"].endswith("step-up-required")
    for who in ("pharma", "nurse", "coord", "auditor", "outsider"):
        ward.login(who)
    cases = [
        ("pharma", "trop court", 422, "reason-too-short"),
        ("pharma", "   a   b   c   d   e   f   ", 422, "reason-too-short"),
        ("pharma", "x" * 1001, 422, "reason-too-long"),
        ("nurse", REASON, 403, "forbidden-already-participant"),
        ("coord", REASON, 403, "forbidden-role"),
        ("auditor", REASON, 403, "forbidden-role"),
        ("outsider", REASON, 404, "not-found"),  # never across groups
    ]
    for who, reason, status, code in cases:
        before = ward.world.audit_count()
        response = glass(ward, who, tid, reason)
        assert response.status_code == status, (who, response.text)
        assert response.json()["type"].endswith(code), response.text
        assert ward.world.audit_count() == before + 1
    assert ward.count("break_glass_grant") == 0
    assert ward.count("notification_event") == 0


def test_break_the_glass_does_not_override_an_opposition(ward: Ward) -> None:
    tid = ward.open(participants=("nurse",))["id"]
    ward.login("pharma")
    assert glass(ward, "pharma", tid).status_code == 201
    assert ward.messages("pharma", tid).status_code == 200
    informed = (utcnow() - dt.timedelta(minutes=1)).isoformat()
    recorded = ward.call(
        "POST",
        "doc",
        f"/api/v1/groups/{ward.gid}/patients/{ward.pid}/oppositions",
        json={"scope": "group", "informed_at": informed},
    )
    assert recorded.status_code == 201
    assert ward.messages("pharma", tid).status_code == 403
    refused = glass(ward, "pharma", tid)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("forbidden-opposition")
