"""Care groups, members and invitations through the HTTP API, with real tokens."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import update
from sqlmodel import col

from hdsapp.core.actor import Role
from hdsapp.models.invitation import Invitation
from tests.groups.world import World, future, past


def _setup(world: World) -> tuple[uuid.UUID, dict[str, uuid.UUID], dict[str, str]]:
    users = {
        name: world.user(f"{name}@example.org")
        for name in ("coord", "doc", "nurse", "outsider", "auditor")
    }
    gid = world.group("CPTS Test", users["coord"])
    world.member(gid, users["doc"], Role.CLINICIAN)
    world.member(gid, users["nurse"], Role.CLINICIAN)
    world.member(gid, users["auditor"], Role.AUDITOR)
    tokens = {name: world.token(uid) for name, uid in users.items()}
    return gid, users, tokens


def test_members_see_their_group_and_outsiders_get_404(world: World) -> None:
    gid, _users, tokens = _setup(world)
    listed = world.call("GET", "/api/v1/groups", tokens["doc"])
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [g["id"] for g in body["items"]] == [str(gid)]
    assert body["items"][0]["role"] == "clinician"
    assert body["items"][0]["member_count"] == 4
    assert body["next_cursor"] is None
    assert world.call("GET", f"/api/v1/groups/{gid}", tokens["doc"]).status_code == 200
    assert world.call("GET", "/api/v1/groups", tokens["outsider"]).json()["items"] == []
    hidden = world.call("GET", f"/api/v1/groups/{gid}", tokens["outsider"])
    missing = world.call("GET", f"/api/v1/groups/{uuid.uuid4()}", tokens["outsider"])
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == missing.json()["detail"]
    assert world.call("GET", f"/api/v1/groups/{gid}", None).status_code == 401


def test_invitation_round_trip(world: World) -> None:
    gid, users, tokens = _setup(world)
    invitee = world.user("newcomer@example.org")
    before = world.audit_count()
    created = world.call(
        "POST",
        f"/api/v1/groups/{gid}/members",
        tokens["coord"],
        json={"email": "Newcomer@Example.org", "role": "clinician"},
    )
    assert created.status_code == 201, created.text
    invitation = created.json()
    assert invitation["status"] == "pending"
    assert invitation["email"] == "newcomer@example.org"
    assert world.audit_count() == before + 1
    token = invitation["token"]
    # Someone else cannot use it.
    accept = f"/api/v1/invitations/{token}/accept"
    assert world.call("POST", accept, tokens["nurse"]).status_code == 403
    accepted = world.call("POST", accept, world.token(invitee))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["role"] == "clinician"
    again = world.call("POST", accept, world.token(invitee))
    assert again.status_code == 410
    assert again.json()["type"].endswith("invitation-used")
    members = world.call("GET", f"/api/v1/groups/{gid}/members", tokens["doc"]).json()["items"]
    assert str(invitee) in {m["user_id"] for m in members}
    del users


def test_bad_invitations(world: World) -> None:
    gid, _users, tokens = _setup(world)
    url = f"/api/v1/groups/{gid}/members"
    cases = [
        {"email": "x@example.org", "role": "surgeon"},
        {"email": "x@example.org", "role": "clinician", "external": "true"},
        {"email": 12, "role": "clinician"},
        {"role": "clinician"},
        {"email": "x@example.org", "role": "clinician", "external": True},
        {"email": "x@example.org", "role": "clinician", "ends_at": future().isoformat()},
        {
            "email": "x@example.org",
            "role": "clinician",
            "external": True,
            "ends_at": past().isoformat(),
        },
        {"email": "x@example.org", "role": "clinician", "unknown": 1},
    ]
    for body in cases:
        response = world.call("POST", url, tokens["coord"], json=body)
        assert response.status_code == 422, (body, response.text)
    existing = world.call(
        "POST", url, tokens["coord"], json={"email": "doc@example.org", "role": "auditor"}
    )
    assert existing.status_code == 409
    assert existing.json()["type"].endswith("already-a-member")
    listed = world.call("GET", f"/api/v1/groups/{gid}/invitations", tokens["coord"])
    assert listed.json()["items"] == []


def test_suspend_remove_and_expiry_take_effect_on_the_next_request(world: World) -> None:
    gid, users, tokens = _setup(world)
    url = f"/api/v1/groups/{gid}"
    assert world.call("GET", url, tokens["doc"]).status_code == 200
    suspended = world.call(
        "PATCH", f"{url}/members/{users['doc']}", tokens["coord"], json={"status": "suspended"}
    )
    assert suspended.status_code == 200, suspended.text
    assert world.call("GET", url, tokens["doc"]).status_code == 404
    world.call("PATCH", f"{url}/members/{users['doc']}", tokens["coord"], json={"status": "active"})
    assert world.call("GET", url, tokens["doc"]).status_code == 200
    assert (
        world.call("DELETE", f"{url}/members/{users['nurse']}", tokens["coord"]).status_code == 204
    )
    assert world.call("GET", url, tokens["nurse"]).status_code == 404
    world.set_membership(gid, users["doc"], ends_at=past())
    assert world.call("GET", url, tokens["doc"]).status_code == 404


def test_the_last_coordinator_stays(world: World) -> None:
    gid, users, tokens = _setup(world)
    url = f"/api/v1/groups/{gid}/members/{users['coord']}"
    refused = world.call("DELETE", url, tokens["coord"])
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("last-coordinator")
    assert (
        world.call("PATCH", url, tokens["coord"], json={"status": "suspended"}).status_code == 409
    )


def test_role_change_needs_a_recent_authentication(world: World) -> None:
    gid, users, tokens = _setup(world)
    url = f"/api/v1/groups/{gid}/members/{users['doc']}"
    refused = world.call("PATCH", url, tokens["coord"], json={"role": "coordinator"})
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("step-up-required")


def test_lists_are_paged(world: World) -> None:
    coordinator = world.user("many@example.org")
    groups = sorted(str(world.group(f"Group {n}", coordinator)) for n in range(3))
    token = world.token(coordinator)
    first = world.call("GET", "/api/v1/groups", token, params={"limit": 2}).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    second = world.call(
        "GET", "/api/v1/groups", token, params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert second["next_cursor"] is None
    seen = [g["id"] for g in first["items"] + second["items"]]
    assert sorted(seen) == groups
    assert [g["name"] for g in first["items"] + second["items"]] == [
        "Group 0",
        "Group 1",
        "Group 2",
    ]
    bad = world.call("GET", "/api/v1/groups", token, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400
    assert world.call("GET", "/api/v1/groups", token, params={"limit": 101}).status_code == 422


def test_invitations_expire_are_single_use_and_can_be_revoked(world: World) -> None:
    gid, _users, tokens = _setup(world)
    url = f"/api/v1/groups/{gid}"
    newcomer = world.user("late@example.org")
    newcomer_token = world.token(newcomer)

    def invite(email: str) -> dict[str, str]:
        response = world.call(
            "POST", f"{url}/members", tokens["coord"], json={"email": email, "role": "clinician"}
        )
        assert response.status_code == 201, response.text
        body: dict[str, str] = response.json()
        return body

    first = invite("late@example.org")
    duplicate = world.call(
        "POST",
        f"{url}/members",
        tokens["coord"],
        json={"email": "late@example.org", "role": "auditor"},
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["invitation_id"] == first["id"]
    revoked = world.call("DELETE", f"{url}/invitations/{first['id']}", tokens["coord"])
    assert revoked.status_code == 204
    gone = world.call("POST", first["accept_path"], newcomer_token)
    assert (gone.status_code, gone.json()["type"]) == (410, "urn:hdsapp:problem:invitation-revoked")
    second = invite("late@example.org")
    with world.database.unit_of_work() as session:
        session.execute(
            update(Invitation)
            .where(col(Invitation.id) == uuid.UUID(second["id"]))
            .values(expires_at=past())
        )
    expired = world.call("POST", second["accept_path"], newcomer_token)
    assert (expired.status_code, expired.json()["type"]) == (
        410,
        "urn:hdsapp:problem:invitation-expired",
    )
    listed = world.call("GET", f"{url}/invitations", tokens["coord"], params={"status": "all"})
    assert {i["status"] for i in listed.json()["items"]} == {"revoked", "expired"}
    unknown = world.call("POST", "/api/v1/invitations/hds_inv_nothing/accept", newcomer_token)
    assert unknown.status_code == 404


def test_external_members_have_an_end_date(world: World) -> None:
    gid, users, tokens = _setup(world)
    member = f"/api/v1/groups/{gid}/members/{users['doc']}"
    missing = world.call("PATCH", member, tokens["coord"], json={"external": True})
    assert missing.status_code == 422
    ends = future(10).isoformat()
    made = world.call("PATCH", member, tokens["coord"], json={"external": True, "ends_at": ends})
    assert made.status_code == 200, made.text
    assert made.json()["external"] is True
    assert made.json()["expired"] is False
    naive = world.call("PATCH", member, tokens["coord"], json={"ends_at": "2030-01-01T00:00:00"})
    assert naive.status_code == 422
    back = world.call("PATCH", member, tokens["coord"], json={"external": False})
    assert back.json()["ends_at"] is None
    external = world.call(
        "POST",
        f"/api/v1/groups/{gid}/members",
        tokens["coord"],
        json={"rpps": "12345678901", "role": "clinician", "external": True, "ends_at": ends},
    )
    assert external.status_code == 201, external.text
    assert external.json()["rpps"] == "12345678901"


def test_audit_entries_carry_the_decision(world: World) -> None:
    gid, users, tokens = _setup(world)
    assert world.call("GET", f"/api/v1/groups/{gid}", tokens["doc"]).status_code == 200
    allowed = json.loads(world.audit_tail()[0]["event"])
    assert allowed["outcome"] == "0"
    assert "urn:hdsapp:legal-basis:group-membership" in allowed["agent"][0]["policy"]
    assert world.call("GET", f"/api/v1/groups/{gid}", tokens["outsider"]).status_code == 404
    denied = world.audit_tail()[0]
    assert denied["outcome"] == 4
    assert json.loads(denied["event"])["outcomeDesc"] == "policy:not-in-group"
    refused = world.call("DELETE", f"/api/v1/groups/{gid}/members/{users['doc']}", tokens["doc"])
    assert refused.status_code == 403
    assert json.loads(world.audit_tail()[0]["event"])["outcomeDesc"] == "policy:role"
