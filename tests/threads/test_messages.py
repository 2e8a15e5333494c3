"""Messages: gap-free seqs, idempotent client ids (also under concurrent posting), encryption,
corrections, paging, and bad input refused, audited and storing nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import text

from hdsapp.core.actor import ALL_SCOPES, Actor, RequestInfo, Role
from hdsapp.threads import service
from hdsapp.threads.schemas import MessageCreate
from tests.threads.conftest import Ward


def test_post_list_and_the_same_client_id_again(ward: Ward) -> None:
    tid = ward.open()["id"]
    before = ward.world.audit_count()
    first = ward.post("doc", tid, "Pansement refait, RAS", client_id="c-1")
    assert first.status_code == 201, first.text
    message = first.json()
    assert (message["seq"], message["body"], message["author"]) == (
        1,
        "Pansement refait, RAS",
        str(ward.users["doc"]),
    )
    assert {"id", "seq", "author", "created_at", "body"} <= set(message)
    assert ward.world.audit_count() == before + 1
    entry = ward.world.audit_tail()[0]
    assert (entry["kind"], entry["outcome"]) == ("create", 0)
    again = ward.post("doc", tid, "Pansement refait, RAS", client_id="c-1")
    assert again.status_code == 200
    assert again.json() == message
    assert ward.post("nurse", tid, "Merci", client_id="c-2").json()["seq"] == 2
    # Someone else's client id is not theirs to replay.
    stolen = ward.post("nurse", tid, "x", client_id="c-1")
    assert stolen.status_code == 409
    listed = ward.messages("nurse", tid).json()
    assert [(m["seq"], m["body"]) for m in listed["items"]] == [
        (1, "Pansement refait, RAS"),
        (2, "Merci"),
    ]
    assert listed["next_cursor"] is None
    assert ward.count("message") == 2
    # Bodies are sealed: nothing of them in the database.
    with ward.world.database.session() as session:
        bodies = session.execute(text("SELECT body FROM message")).scalars().all()
    assert all(b"Pansement" not in bytes(b) and b"Merci" not in bytes(b) for b in bodies)


def test_paging_by_after_and_cursor(ward: Ward) -> None:
    tid = ward.open()["id"]
    for n in range(1, 8):
        assert ward.post("doc", tid, f"m{n}").json()["seq"] == n
    page = ward.messages("nurse", tid, limit=3).json()
    assert [m["seq"] for m in page["items"]] == [1, 2, 3]
    assert page["next_cursor"] == "3"
    follow = ward.messages("nurse", tid, limit=3, cursor=page["next_cursor"]).json()
    assert [m["seq"] for m in follow["items"]] == [4, 5, 6]
    tail = ward.messages("nurse", tid, after=5, limit=100).json()
    assert [m["seq"] for m in tail["items"]] == [6, 7]
    assert tail["next_cursor"] is None
    assert ward.messages("nurse", tid, limit=101).status_code == 422
    assert ward.messages("nurse", tid, cursor="-1").status_code == 400


def test_corrections_are_new_messages(ward: Ward) -> None:
    tid = ward.open()["id"]
    wrong = ward.post("doc", tid, "Dose: 50 mg").json()
    body = {"body": "Correction: 5 mg", "client_id": "fix-1", "corrects": wrong["id"]}
    fixed = ward.call("POST", "doc", f"/api/v1/threads/{tid}/messages", json=body)
    assert fixed.status_code == 201
    assert (fixed.json()["seq"], fixed.json()["corrects"]) == (2, wrong["id"])
    items = ward.messages("nurse", tid).json()["items"]
    assert [m["body"] for m in items] == ["Dose: 50 mg", "Correction: 5 mg"]
    other = ward.open()["id"]
    elsewhere = {"body": "x", "client_id": "fix-2", "corrects": wrong["id"]}
    refused = ward.call("POST", "doc", f"/api/v1/threads/{other}/messages", json=elsewhere)
    assert refused.status_code == 422
    # No silent edits: there is no route to change a message.
    assert ward.call("PATCH", "doc", f"/api/v1/threads/{tid}/messages").status_code == 405


def test_bad_messages_are_refused_audited_and_store_nothing(ward: Ward) -> None:
    tid = ward.open(participants=("nurse",))["id"]
    url = f"/api/v1/threads/{tid}/messages"
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("doc", {"body": "", "client_id": "a"}, 422, "empty-body"),
        ("doc", {"body": "   \n ", "client_id": "a"}, 422, "empty-body"),
        ("doc", {"body": "x" * 20_001, "client_id": "a"}, 422, "body-too-long"),
        ("doc", {"body": "ok", "client_id": ""}, 422, "invalid-client-id"),
        ("doc", {"body": "ok", "client_id": "a b"}, 422, "invalid-client-id"),
        ("doc", {"body": "ok", "client_id": "x" * 65}, 422, "invalid-client-id"),
        ("doc", {"body": "ok", "client_id": "é"}, 422, "invalid-client-id"),
        ("pharma", {"body": "ok", "client_id": "a"}, 403, "forbidden-not-participant"),
        ("outsider", {"body": "ok", "client_id": "a"}, 404, "not-found"),
    ]
    for who, body, status, code in cases:
        before = ward.world.audit_count()
        response = ward.call("POST", who, url, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["type"].endswith(code), response.text
        assert "x" * 50 not in response.text  # never echoed
        assert ward.world.audit_count() == before + 1, body
        assert ward.world.audit_tail()[0]["outcome"] in {4, 8}
    assert ward.count("message") == 0
    assert ward.call("GET", "doc", f"/api/v1/threads/{tid}").json()["last_seq"] == 0


def _poster(ward: Ward, tid: str, who: str) -> Callable[[str, str], service.Posted]:
    """Post as ``who`` through the use case, in a unit of work of its own (a worker)."""
    user = ward.users[who]
    actor = Actor(
        kind="user",
        request=RequestInfo(request_id=f"worker-{uuid.uuid4().hex[:8]}"),
        user_id=user,
        memberships={ward.gid: Role.CLINICIAN},
        scopes=ALL_SCOPES,
    )
    database, settings = ward.world.database, ward.world.settings
    keyring = ward.app.state.keyring

    def post(body: str, client_id: str) -> service.Posted:
        with database.unit_of_work() as session:
            return service.post_message(
                session=session,
                database=database,
                actor=actor,
                settings=settings,
                keyring=keyring,
                thread_id=uuid.UUID(tid),
                request=MessageCreate(body=body, client_id=client_id),
            )

    return post


def test_the_same_client_id_from_concurrent_workers_makes_one_message(ward: Ward) -> None:
    tid = ward.open()["id"]
    post = _poster(ward, tid, "doc")
    workers = 8
    start = threading.Barrier(workers)

    def attempt(_: int) -> service.Posted:
        start.wait()
        return post("Appel du patient à 14h", "flaky-phone-42")

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(attempt, range(workers)))
    assert len({r.message.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert {r.message.seq for r in results} == {1}
    assert ward.count("message") == 1
    # And over HTTP, as the phone would retry.
    replay = ward.post("doc", tid, "Appel du patient à 14h", client_id="flaky-phone-42")
    assert replay.status_code == 200
    assert replay.json()["id"] == str(results[0].message.id)


def test_concurrent_posting_gives_gap_free_seqs(ward: Ward) -> None:
    tid = ward.open(participants=("nurse", "pharma"))["id"]
    other = ward.open(participants=("nurse",))["id"]
    posters = [_poster(ward, tid, who) for who in ("doc", "nurse", "pharma")]
    elsewhere = _poster(ward, other, "nurse")
    workers, per_worker = 6, 8
    start = threading.Barrier(workers + 1)

    def worker(n: int) -> list[int]:
        start.wait()
        post = posters[n % len(posters)]
        return [post(f"w{n} m{i}", f"w{n}-{i}").message.seq for i in range(per_worker)]

    def other_thread() -> list[int]:
        start.wait()
        return [elsewhere(f"o{i}", f"o-{i}").message.seq for i in range(per_worker)]

    with ThreadPoolExecutor(workers + 1) as pool:
        futures = [pool.submit(worker, n) for n in range(workers)]
        side = pool.submit(other_thread)
        seqs = [s for f in futures for s in f.result()]
        assert side.result() == list(range(1, per_worker + 1))
    total = workers * per_worker
    assert sorted(seqs) == list(range(1, total + 1))
    with ward.world.database.session() as session:
        stored = (
            session.execute(
                text("SELECT seq FROM message WHERE thread_id = :t ORDER BY seq"),
                {"t": uuid.UUID(tid).hex if ward.world.database.backend == "sqlite" else tid},
            )
            .scalars()
            .all()
        )
    assert list(stored) == list(range(1, total + 1))
    thread = ward.call("GET", "doc", f"/api/v1/threads/{tid}").json()
    assert thread["last_seq"] == total
    # Each worker's messages keep their order.
    items = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = ward.messages("doc", tid, **params).json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    for n in range(workers):
        mine = [m["body"] for m in items if m["body"].startswith(f"w{n} ")]
        assert mine == [f"w{n} m{i}" for i in range(per_worker)]
