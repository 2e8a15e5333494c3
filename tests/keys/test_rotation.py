"""KEK and root rotation: everything stays readable, content ciphertexts are never touched, an
interrupted rotation (an exception, or the process killed) resumes on the next run, and old
versions can then be destroyed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
import sqlalchemy as sa

from hdsapp.core.actor import system_actor
from hdsapp.core.crypto.errors import MissingKeyError
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.crypto.providers.local import LocalKeyProvider
from hdsapp.keys import service
from tests.keys.conftest import Store


class Crash(Exception):
    pass


def kek_rows(store: Store, group_id: uuid.UUID) -> list[tuple[int, str, bool]]:
    with store.database.unit_of_work() as session:
        return [
            (int(r.version), r.status, r.wrapped is not None)
            for r in session.execute(
                sa.text(
                    "SELECT version, status, wrapped FROM group_key WHERE group_id = :g"
                    " ORDER BY version"
                ),
                {"g": group_id.hex if store.database.backend == "sqlite" else str(group_id)},
            )
        ]


def wrapped_under(store: Store) -> dict[int, int]:
    with store.database.unit_of_work() as session:
        return {
            int(v): int(n)
            for v, n in session.execute(
                sa.text("SELECT kek_version, count(*) FROM data_key GROUP BY kek_version")
            )
        }


def test_kek_rotation_keeps_everything_readable_and_content_untouched(store: Store) -> None:
    group = uuid.uuid4()
    threads = [uuid.uuid4() for _ in range(5)]
    store.seed(group, [*threads, None])
    before = store.stored()
    report = service.rotate_group(
        database=store.database,
        keyring=store.keyring,
        actor=system_actor(),
        group_id=group,
        batch=2,
    )
    assert (report.version, report.rewrapped) == (2, 6)
    assert wrapped_under(store) == {2: 6}
    assert kek_rows(store, group) == [(1, "retired", True), (2, "active", True)]
    assert store.stored() == before  # byte-identical
    assert store.unreadable() == set()
    assert store.unreadable(store.fresh_keyring()) == set()  # nothing cached
    # New seals use the new KEK; old versions destroyed on request only.
    store.seed(group, [uuid.uuid4()])
    destroyed = service.destroy_old_group_keys(
        database=store.database, keyring=store.keyring, actor=system_actor(), group_id=group
    )
    assert destroyed == [1]
    assert kek_rows(store, group) == [(1, "destroyed", False), (2, "active", True)]
    assert store.unreadable(store.fresh_keyring()) == set()
    assert store.stored().items() >= before.items()


def test_rotation_interrupted_by_an_error_resumes_without_a_new_version(store: Store) -> None:
    group = uuid.uuid4()
    store.seed(group, [uuid.uuid4() for _ in range(7)], per_thread=1)
    before = store.stored()

    def crash_after_two_batches(done: int) -> None:
        if done >= 4:
            raise Crash

    with pytest.raises(Crash):
        service.rotate_group(
            database=store.database,
            keyring=store.keyring,
            actor=system_actor(),
            group_id=group,
            batch=2,
            after_batch=crash_after_two_batches,
        )
    assert wrapped_under(store) == {1: 4, 2: 4}  # 7 threads + the group's own key
    assert store.unreadable(store.fresh_keyring()) == set()  # half-way is readable too
    # Destroying old versions now would leave keys unwrappable: it refuses to.
    assert (
        service.destroy_old_group_keys(
            database=store.database, keyring=store.keyring, actor=system_actor(), group_id=group
        )
        == []
    )
    report = service.rotate_group(
        database=store.database, keyring=store.keyring, actor=system_actor(), group_id=group
    )
    assert (report.version, report.rewrapped) == (2, 4)  # resumed, no version 3
    assert wrapped_under(store) == {2: 8}
    assert store.stored() == before
    assert store.unreadable(store.fresh_keyring()) == set()
    # A redelivered task (same target) changes nothing; a new rotation makes version 3.
    again = service.rotate_group(
        database=store.database,
        keyring=store.keyring,
        actor=system_actor(),
        group_id=group,
        target=2,
    )
    assert (again.version, again.rewrapped) == (2, 0)
    third = service.rotate_group(
        database=store.database,
        keyring=store.keyring,
        actor=system_actor(),
        group_id=group,
        destroy_old=True,
    )
    assert (third.version, third.rewrapped, third.destroyed) == (3, 8, [1, 2])
    assert store.unreadable(store.fresh_keyring()) == set()


KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys, uuid
    from hdsapp.core.actor import system_actor
    from hdsapp.core.crypto.keyring import Keyring
    from hdsapp.core.crypto.providers.local import LocalKeyProvider
    from hdsapp.core.db import Database
    from hdsapp.keys import service

    url, key_file, group, kill_after = sys.argv[1:5]

    def die(done):
        if done >= int(kill_after):
            os._exit(9)  # no cleanup, no rollback: as a killed worker

    service.rotate_group(
        database=Database(url),
        keyring=Keyring(LocalKeyProvider(key_file)),
        actor=system_actor(),
        group_id=uuid.UUID(group),
        batch=3,
        after_batch=die,
    )
    """
)


def test_rotation_killed_mid_way_resumes(store: Store) -> None:
    group = uuid.uuid4()
    store.seed(group, [uuid.uuid4() for _ in range(9)], per_thread=1)
    before = store.stored()
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILL_SCRIPT,
            store.database.url,
            str(store.directory / "root-keys"),
            str(group),
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert killed.returncode == 9, killed.stderr
    assert wrapped_under(store) == {1: 4, 2: 6}
    assert store.unreadable(store.fresh_keyring()) == set()
    report = service.rotate_group(
        database=store.database,
        keyring=store.fresh_keyring(),
        actor=system_actor(),
        group_id=group,
        destroy_old=True,
    )
    assert (report.version, report.rewrapped, report.destroyed) == (2, 4, [1])
    assert store.stored() == before
    assert store.unreadable(store.fresh_keyring()) == set()


def test_root_rotation_with_the_local_key_file(store: Store) -> None:
    groups = [uuid.uuid4() for _ in range(3)]
    for group in groups:
        store.seed(group, [uuid.uuid4(), None], per_thread=2)
        with store.database.unit_of_work() as session:
            store.keyring.blind_index(session, group_id=group, purpose="ins", value="1.2|x")
    before = store.stored()
    with store.database.unit_of_work() as session:
        index_before = store.keyring.blind_index(
            session, group_id=groups[0], purpose="ins", value="1.2|x"
        )

    def crash(done: int) -> None:
        if done >= 2:
            raise Crash

    with pytest.raises(Crash):
        service.rotate_root(
            database=store.database,
            keyring=store.keyring,
            actor=system_actor(),
            batch=2,
            after_batch=crash,
        )
    assert LocalKeyProvider(store.directory / "root-keys").describe()["versions"] == [1, 2]
    report = service.rotate_root(
        database=store.database, keyring=store.keyring, actor=system_actor(), destroy_old=True
    )
    assert (report.version, report.rewrapped, report.destroyed) == (2, 4, [1])
    assert LocalKeyProvider(store.directory / "root-keys").describe()["versions"] == [2]
    assert store.stored() == before
    fresh = store.fresh_keyring()
    assert store.unreadable(fresh) == set()
    with store.database.unit_of_work() as session:
        assert (
            fresh.blind_index(session, group_id=groups[0], purpose="ins", value="1.2|x")
            == index_before
        )
        roots = session.execute(
            sa.text("SELECT version, status FROM key_root_version ORDER BY version")
        ).all()
    assert [tuple(r) for r in roots] == [(1, "destroyed"), (2, "active")]


def test_destroyed_root_version_makes_a_restored_old_key_unusable(store: Store) -> None:
    group = uuid.uuid4()
    store.seed(group, [uuid.uuid4()])
    with store.database.unit_of_work() as session:
        old_kek = session.execute(sa.text("SELECT wrapped FROM group_key")).scalar_one()
    service.rotate_root(
        database=store.database, keyring=store.keyring, actor=system_actor(), destroy_old=True
    )
    with store.database.unit_of_work() as session:
        session.execute(sa.text("UPDATE group_key SET wrapped = :w"), {"w": old_kek})
    fresh = store.fresh_keyring()
    assert store.unreadable(fresh) == set(store.sealed)
    with store.database.unit_of_work() as session:
        problems = list(fresh.unwrap_check(session))
    assert any("root key version 1" in p for p in problems)


def test_keyring_with_status(store: Store) -> None:
    group = uuid.uuid4()
    store.seed(group, [uuid.uuid4(), uuid.uuid4()])
    service.rotate_group(
        database=store.database, keyring=store.keyring, actor=system_actor(), group_id=group
    )
    data = service.status(database=store.database, keyring=store.keyring)
    json.dumps(data)  # one JSON object
    assert data["provider"]["kind"] == "local"
    assert data["provider"]["versions"] == [1]
    assert [r["version"] for r in data["root_versions"]] == [1]
    (entry,) = data["groups"]
    assert entry["group_id"] == str(group)
    assert [v["status"] for v in entry["kek_versions"]] == ["retired", "active"]
    assert entry["data_keys"]["versions"] == 3
    assert entry["data_keys"]["seals"] == 6
    assert entry["data_keys"]["pending_rewrap"] == 0
    assert data["last_rotation"] is not None
    assert data["data_keys"]["cap"] == store.keyring.max_seals


def test_unknown_group_is_refused(store: Store) -> None:
    from hdsapp.core.errors import NotFound

    with pytest.raises(NotFound, match="no key"):
        service.rotate_group(
            database=store.database,
            keyring=store.keyring,
            actor=system_actor(),
            group_id=uuid.uuid4(),
        )


def test_a_destroyed_kek_takes_nothing_readable_with_it(store: Store) -> None:
    group = uuid.uuid4()
    store.seed(group, [uuid.uuid4()])
    service.rotate_group(
        database=store.database,
        keyring=store.keyring,
        actor=system_actor(),
        group_id=group,
        destroy_old=True,
    )
    fresh: Keyring = store.fresh_keyring()
    with store.database.unit_of_work() as session, pytest.raises(MissingKeyError):
        fresh._kek(session, group, 1)
    assert store.unreadable(fresh) == set()
