"""Crypto-shredding: audited, effective at once in this process and at the next request in any
other, final across database restores (the ledger is re-applied), and the CLI around it."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import make_url

from hdsapp.config import Settings
from hdsapp.core.actor import system_actor
from hdsapp.core.crypto.keyring import Keyring, ShredLedgerFile
from hdsapp.core.crypto.providers.local import LocalKeyProvider
from hdsapp.core.db import Database
from hdsapp.core.errors import NotFound
from hdsapp.keys import service
from tests.conftest import _pg_admin, _pg_url
from tests.keys.conftest import Store, keys_env


def shred(store: Store, thread_id: uuid.UUID, reason: str = "retention period over") -> None:
    with store.database.unit_of_work() as session:
        service.shred_thread(
            session,
            actor=system_actor(),
            thread_id=thread_id,
            reason=reason,
            keyring=store.keyring,
            database=store.database,
        )


def audit_entries(database: Database, kind: str) -> list[dict[str, object]]:
    with database.unit_of_work() as session:
        rows = session.execute(
            sa.text("SELECT kind, action, outcome, event FROM audit_entry WHERE kind = :k"),
            {"k": kind},
        ).all()
    return [
        {"action": r.action, "outcome": int(r.outcome), "event": json.loads(r.event)} for r in rows
    ]


def test_shred_is_audited_and_recorded_in_both_ledgers(store: Store) -> None:
    group, thread, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    store.seed(group, [thread, other, None])
    shred(store, thread)
    assert store.unreadable() == store.ids_of(thread)
    assert store.unreadable(store.fresh_keyring()) == store.ids_of(thread)
    (entry,) = audit_entries(store.database, "shred")
    assert (entry["action"], entry["outcome"]) == ("D", 0)
    event = entry["event"]
    assert isinstance(event, dict)
    references = [e.get("what", {}).get("reference") for e in event["entity"]]
    assert f"Thread/{thread}" in references
    assert f"Organization/{group}" in references
    assert "retention" not in json.dumps(event)  # the reason is the ledger's, not the log's
    (record,) = ShredLedgerFile(store.directory / "shred-ledger.jsonl").read()
    assert (record.thread_id, record.group_id) == (thread, group)
    # Twice: reported, not recorded twice.
    shred(store, thread)
    assert len(ShredLedgerFile(store.directory / "shred-ledger.jsonl").read()) == 1
    # Unknown thread: refused, and the refusal is in the log too.
    with pytest.raises(NotFound, match="no key for thread"):
        shred(store, uuid.uuid4())
    assert [e["outcome"] for e in audit_entries(store.database, "shred")] == [0, 0, 4]


def test_a_rolled_back_shred_changes_nothing(store: Store) -> None:
    group, thread = uuid.uuid4(), uuid.uuid4()
    store.seed(group, [thread])

    def shred_then_fail() -> None:
        with store.database.unit_of_work() as session:
            store.keyring.shred_thread(
                session, actor=system_actor(), thread_id=thread, reason="oops"
            )
            raise RuntimeError("the use case failed after the shred")

    with pytest.raises(RuntimeError):
        shred_then_fail()
    assert store.unreadable() == set()
    assert not (store.directory / "shred-ledger.jsonl").exists()


OTHER_PROCESS = textwrap.dedent(
    """
    import sys, uuid
    from hdsapp.core.crypto.keyring import Keyring
    from hdsapp.core.crypto.providers.local import LocalKeyProvider
    from hdsapp.core.db import Database
    from tests.core.crypto.keyring_support import message

    url, key_file, group, thread, record, envelope = sys.argv[1:7]
    keyring = Keyring(LocalKeyProvider(key_file), cache_ttl=3600)  # cached all along
    database = Database(url)
    aad = message(uuid.UUID(group), uuid.UUID(thread), record)
    for _ in sys.stdin:
        try:
            with database.unit_of_work() as session:
                keyring.open(session, aad=aad, envelope=bytes.fromhex(envelope))
            print("opened", flush=True)
        except Exception as exc:
            print(type(exc).__name__, flush=True)
    """
)


def test_shredded_thread_is_unreadable_in_another_process_that_cached_its_key(
    store: Store,
) -> None:
    group, thread = uuid.uuid4(), uuid.uuid4()
    store.seed(group, [thread], per_thread=1)
    ((record_id, (_, envelope)),) = store.sealed.items()
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            OTHER_PROCESS,
            store.database.url,
            str(store.directory / "root-keys"),
            str(group),
            str(thread),
            record_id,
            envelope.hex(),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert other.stdin is not None
    assert other.stdout is not None
    try:
        other.stdin.write("open\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "opened"  # its key is cached now
        shred(store, thread)
        other.stdin.write("open\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "KeyShredded"
    finally:
        other.stdin.close()
        other.wait(timeout=60)
        other.stdout.close()


# -- backups -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Backup:
    store: Store
    path: Path
    restored: list[str] = dataclasses.field(default_factory=list)

    def restore(self) -> Database:
        """Restore the backup into a new database (the original keeps running)."""
        url = self.store.database.url
        if url.startswith("sqlite"):
            target = self.path.parent / f"restored-{uuid.uuid4().hex[:8]}.sqlite3"
            for part in sorted(self.path.parent.glob(self.path.name + "*")):
                shutil.copyfile(part, str(target) + part.name.removeprefix(self.path.name))
            return Database(f"sqlite:///{target}")
        name = f"hds_restored_{uuid.uuid4().hex[:12]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        self.restored.append(name)
        subprocess.run(
            ["pg_restore", "--no-owner", "-d", _libpq(_pg_url(name)), str(self.path)],
            check=True,
            capture_output=True,
        )
        return Database(_pg_url(name))


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def seeded(store: Store) -> tuple[Store, uuid.UUID, uuid.UUID, uuid.UUID]:
    group, doomed, kept = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    store.seed(group, [doomed, kept, None])
    return store, group, doomed, kept


@pytest.fixture
def backup_of(
    seeded: tuple[Store, uuid.UUID, uuid.UUID, uuid.UUID], tmp_path: Path
) -> Iterator[Backup]:
    """A backup of the database taken after ``seeded``: a file copy of SQLite (with its WAL),
    ``pg_dump -Fc`` of PostgreSQL."""
    store = seeded[0]
    url = store.database.url
    directory = tmp_path / "backup"
    directory.mkdir()
    if url.startswith("sqlite"):
        source = Path(make_url(url).database or "")
        path = directory / source.name
        for part in source.parent.glob(source.name + "*"):  # the file and its WAL
            shutil.copyfile(part, directory / part.name)
    else:
        path = directory / "dump.pgc"
        subprocess.run(["pg_dump", "-Fc", "-f", str(path), _libpq(url)], check=True)
    backup = Backup(store, path)
    yield backup
    for name in backup.restored:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_backup_from_before_the_shred_stays_unreadable_after_restore(
    seeded: tuple[Store, uuid.UUID, uuid.UUID, uuid.UUID], backup_of: Backup
) -> None:
    store, group, doomed, _ = seeded
    backup = backup_of
    shred(store, doomed)
    service.rotate_group(
        database=store.database,
        keyring=store.keyring,
        actor=system_actor(),
        group_id=group,
        destroy_old=True,
    )
    assert store.unreadable(store.fresh_keyring()) == store.ids_of(doomed)

    # Restored as it was, the backup would open the shredded thread: its keys are in it.
    restored = dataclasses.replace(store, database=backup.restore())
    assert restored.unreadable(store.fresh_keyring()) == set()
    # Start-up re-applies the ledger (its copy outside the database knows the shred).
    keyring = store.fresh_keyring()
    problems = service.startup(database=restored.database, keyring=keyring, require_root=True)
    assert problems == []
    assert restored.unreadable(store.fresh_keyring()) == store.ids_of(doomed)
    with restored.database.unit_of_work() as session:
        entries = session.execute(sa.text("SELECT actor_kind FROM shred_ledger")).all()
    assert [e.actor_kind for e in entries] == ["restore"]
    # ... and stays so: no key can be made for the thread again.
    with pytest.raises(Exception, match="shredded"):
        restored.seed(group, [doomed])

    # The operator command does the same on another restored copy.
    again = dataclasses.replace(store, database=backup.restore())
    env = {
        **keys_env(_settings_for(store, again.database)),
        "HDS_ROOT_KEY_FILE": str(store.directory / "root-keys"),
        "HDS_SHRED_LEDGER_FILE": str(store.directory / "shred-ledger.jsonl"),
    }
    result = hdsapp("keys", "reapply-shreds", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["restored_entries"] == 1
    assert report["deleted_keys"] == 1
    assert again.unreadable(store.fresh_keyring()) == store.ids_of(doomed)

    # Without the ledger file, only the destruction of the root version protects old backups:
    # after a root rotation with --destroy-old, nothing in the backup unwraps any more.
    service.rotate_root(
        database=store.database, keyring=store.keyring, actor=system_actor(), destroy_old=True
    )
    assert store.unreadable(store.fresh_keyring()) == store.ids_of(doomed)
    lost = dataclasses.replace(store, database=backup.restore())
    no_ledger = Keyring(LocalKeyProvider(store.directory / "root-keys"))
    assert lost.unreadable(no_ledger) == set(store.sealed)
    for database in (restored.database, again.database, lost.database):
        database.dispose()


def _settings_for(store: Store, database: Database) -> Settings:
    return Settings.model_validate({"data_dir": store.directory, "database_url": database.url})


def hdsapp(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hdsapp", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


# -- the command line --------------------------------------------------------------------------


def test_keys_commands(store: Store, settings: Settings) -> None:
    env = keys_env(settings)
    group, thread = uuid.uuid4(), uuid.uuid4()
    store.seed(group, [thread, None])

    status = hdsapp("keys", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["provider"]["kind"] == "local"
    assert data["groups"][0]["group_id"] == str(group)
    assert data["data_keys"]["seals"] == 6
    assert "keys" not in status.stderr.lower() or "Traceback" not in status.stderr

    unknown = uuid.uuid4()
    refused = hdsapp(
        "keys", "shred", "--thread", str(unknown), "--reason", "test", "--json", env=env
    )
    assert refused.returncode == 1
    assert json.loads(refused.stdout) == {
        "ok": False,
        "error": "refused",
        "problems": [f"The key store has no key for thread {unknown}: nothing to shred."],
    }
    bad = hdsapp("keys", "shred", "--thread", "not-a-uuid", "--reason", "x", env=env)
    assert bad.returncode == 2
    assert "not a UUID" in bad.stderr

    done = hdsapp(
        "keys", "shred", "--thread", str(thread), "--reason", "erasure request", "--json", env=env
    )
    assert done.returncode == 0, done.stderr
    shredded = json.loads(done.stdout)
    assert shredded["key_versions_destroyed"] == 1
    assert shredded["already_shredded"] is False
    assert store.unreadable(store.fresh_keyring()) == store.ids_of(thread)

    rotated = hdsapp("keys", "rotate", "--destroy-old", "--json", env=env)
    assert rotated.returncode == 0, rotated.stderr
    (report,) = json.loads(rotated.stdout)["rotated"]
    assert (report["version"], report["rewrapped"], report["destroyed"]) == (2, 1, [1])

    root = hdsapp("keys", "rotate", "--root", "--destroy-old", "--json", env=env)
    assert root.returncode == 0, root.stderr
    (report,) = json.loads(root.stdout)["rotated"]
    assert (report["scope"], report["version"], report["destroyed"]) == ("root", 2, [1])

    check = hdsapp("keys", "check", "--json", env=env)
    assert check.returncode == 0, check.stdout
    assert json.loads(check.stdout) == {"ok": True, "problems": []}
    assert store.unreadable(store.fresh_keyring()) == store.ids_of(thread)

    reapply = hdsapp("keys", "reapply-shreds", "--json", env=env)
    assert json.loads(reapply.stdout)["deleted_keys"] == 0

    status = json.loads(hdsapp("keys", "status", "--json", env=env).stdout)
    assert status["shreds"]["entries"] == 1
    assert [r["status"] for r in status["root_versions"]] == ["destroyed", "active"]
    assert status["last_rotation"] is not None
    for output in (status, shredded):
        assert store.directory.joinpath("root-keys").read_text().split()[-1] not in json.dumps(
            output
        )
