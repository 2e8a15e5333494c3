"""Append-only is enforced by the database; tampering behind its back is found by the
verifiers, which name the entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from audit.note import Verifier
from hdsapp import migrations
from hdsapp.auditing import repository, service
from hdsapp.auditing.schemas import LogReport
from hdsapp.config import Settings
from hdsapp.core.db import Database
from tests.auditing.support import GROUP, api, caller, seed, sign, signer_for
from tests.conftest import PG_ADMIN_URL, REPO_ROOT, require_service

__all__ = ["api", "caller"]  # fixtures

APPEND_ONLY = ["audit_entry", "audit_node", "audit_checkpoint"]


@pytest.fixture
def filled(database: Database, settings: Settings) -> Database:
    seed(database, 12)
    sign(database, signer_for(settings))
    return database


def refused(database: Database, statement: str) -> str:
    """Run ``statement``; it must fail, changing nothing. Returns the error text."""
    with pytest.raises(DBAPIError) as caught, database.engine.begin() as connection:
        connection.execute(text(statement))
    return str(caught.value.orig)


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_update_and_delete_are_refused(filled: Database, table: str) -> None:
    column = {"audit_entry": "kind", "audit_node": "hash", "audit_checkpoint": "note"}[table]
    value = "'x'" if table != "audit_node" else "hash"
    assert "append-only" in refused(filled, f"UPDATE {table} SET {column} = {value}")
    assert "append-only" in refused(filled, f"DELETE FROM {table}")
    one = {
        "audit_entry": "position = 1",
        "audit_node": "level = 1",
        "audit_checkpoint": "tree_size = 12",
    }
    assert "append-only" in refused(filled, f"DELETE FROM {table} WHERE {one[table]}")
    if filled.backend == "postgresql":
        assert "append-only" in refused(filled, f"TRUNCATE {table}")
        assert "append-only" in refused(filled, f"TRUNCATE {table} CASCADE")


def test_the_head_only_grows(filled: Database) -> None:
    assert "append-only" in refused(filled, "DELETE FROM audit_head")
    assert "only grows" in refused(filled, "UPDATE audit_head SET tree_size = 3")
    assert "only grows" in refused(filled, "UPDATE audit_head SET tree_size = tree_size")
    if filled.backend == "postgresql":
        assert "append-only" in refused(filled, "TRUNCATE audit_head")


def test_replica_mode_does_not_skip_the_triggers(filled: Database) -> None:
    if filled.backend != "postgresql":
        pytest.skip("PostgreSQL only")

    def delete_as_replica() -> None:
        with filled.engine.begin() as connection:
            connection.execute(text("SET LOCAL session_replication_role = replica"))
            connection.execute(text("DELETE FROM audit_entry"))

    with pytest.raises(DBAPIError, match="append-only"):
        delete_as_replica()


def test_the_log_is_intact_after_the_refusals(filled: Database) -> None:
    for table in APPEND_ONLY:
        refused(filled, f"DELETE FROM {table}")
    assert verify(filled).ok


# -- tampering as a superuser, triggers out of the way ------------------------------------------


def tamper(database: Database, statement: str) -> None:
    with database.engine.begin() as connection:
        if database.backend == "postgresql":
            connection.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER ALL"))
            connection.execute(text(statement))
        else:
            connection.execute(text("DROP TRIGGER audit_entry_no_update"))
            connection.execute(text("DROP TRIGGER audit_entry_no_delete"))
            connection.execute(text(statement))


def verify(database: Database) -> LogReport:
    with repository.snapshot(database.url) as session:
        keys = [Verifier.parse(c.verifier_key) for c in repository.checkpoints(session)[:1]]
        return service.verify_log(session=session, verifiers=keys, pinned=False)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_rewritten_event_is_named_by_both_verifiers(
    filled: Database, settings: Settings, api: TestClient, tmp_path: Path
) -> None:
    env = {"HDS_DATA_DIR": str(settings.data_dir), "HDS_DATABASE_URL": filled.url}
    before = run(["-m", "hdsapp", "audit", "verify", "--json"], env)
    assert before.returncode == 0, before.stdout + before.stderr
    assert json.loads(before.stdout)["ok"] is True

    # Entry 4 (this group's) now claims another purpose of use.
    tamper(
        filled,
        "UPDATE audit_entry SET event = replace(event, 'TREAT', 'PATRQT') WHERE position = 4",
    )

    after = run(["-m", "hdsapp", "audit", "verify", "--json"], env)
    assert after.returncode == 1
    report = json.loads(after.stdout)
    assert report["ok"] is False
    assert report["first_bad_index"] == 4
    assert report["error"] == "entry 4: event hash mismatch"
    assert set(report) >= {"ok", "entries", "checkpoint_size"}
    text_out = run(["-m", "hdsapp", "audit", "verify"], env)
    assert text_out.returncode == 1
    assert "entry 4" in text_out.stdout

    export = api.get(f"/api/v1/groups/{GROUP}/audit/export")
    assert export.status_code == 200, export.text
    path = tmp_path / "export.json"
    path.write_bytes(export.content)
    key = signer_for(settings).verifier
    offline = run(["-m", "audit", "verify", str(path), "--key", str(key), "--json"], {})
    assert offline.returncode == 1
    assert json.loads(offline.stdout)["error"] == "entry 4: event hash mismatch"


@pytest.mark.parametrize(
    ("statement", "index", "message"),
    [
        ("DELETE FROM audit_entry WHERE position = 6", 6, "entry 6: missing"),
        ("DELETE FROM audit_entry WHERE position >= 10", 10, "entry 10: the head counts 12"),
        (
            "UPDATE audit_entry SET patient_id = group_id WHERE position = 2",
            2,
            "entry 2: the indexed columns",
        ),
        ("UPDATE audit_entry SET nonce = leaf_hash WHERE position = 0", 0, "entry 0: event hash"),
        (
            "UPDATE audit_entry SET leaf_hash = nonce WHERE position = 7",
            7,
            "entry 7: the stored leaf",
        ),
    ],
)
def test_other_tampering_is_named(
    filled: Database, statement: str, index: int, message: str
) -> None:
    tamper(filled, statement)
    report = verify(filled)
    assert not report.ok
    assert report.first_bad_index == index
    assert report.error is not None
    assert report.error.startswith(message), report.error


def test_a_replaced_checkpoint_signature_is_refused(filled: Database) -> None:
    with filled.engine.begin() as connection:
        if filled.backend == "postgresql":
            connection.execute(text("ALTER TABLE audit_checkpoint DISABLE TRIGGER ALL"))
        else:
            connection.execute(text("DROP TRIGGER audit_checkpoint_no_update"))
        connection.execute(text("UPDATE audit_checkpoint SET tree_size = tree_size"))
        connection.execute(
            text("UPDATE audit_checkpoint SET note = replace(note, '\n12\n', '\n11\n')")
        )
    report = verify(filled)
    assert not report.ok
    assert report.error is not None
    assert report.error.startswith("checkpoint 0 (size 12)")


# -- privileges -------------------------------------------------------------------------------


@pytest.fixture
def app_role() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database whose future tables are all granted to a new role."""
    if not PG_ADMIN_URL:
        require_service("PostgreSQL (HDS_TEST_DATABASE_URL)")
    role, name = f"hds_app_{uuid.uuid4().hex[:8]}", f"hds_roles_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE ROLE "{role}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE,"
                    f' DELETE, TRUNCATE ON TABLES TO "{role}"'
                )
            )
        engine.dispose()
        yield role, url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_the_migration_revokes_changes_from_the_app_role(
    app_role: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    role, url = app_role
    monkeypatch.setenv("HDS_DB_APP_ROLE", role)
    migrations.upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:

            def may(table: str, privilege: str) -> bool:
                return bool(
                    connection.execute(
                        text("SELECT has_table_privilege(:role, :table, :privilege)"),
                        {"role": role, "table": table, "privilege": privilege},
                    ).scalar_one()
                )

            for table in APPEND_ONLY:
                assert may(table, "INSERT")
                assert may(table, "SELECT")
                for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
                    assert not may(table, privilege)
            assert may("audit_head", "UPDATE")
            assert not may("audit_head", "DELETE")
            assert not may("audit_head", "TRUNCATE")
            assert may("worker_heartbeat", "DELETE")  # other tables keep their grants
    finally:
        engine.dispose()
