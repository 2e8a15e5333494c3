"""Fixtures of the key operation tests: a key store (local root key file, ledger file) over the
per-test database of tests/conftest.py, and sealed content kept in a table of its own so that
tests can check it is never touched."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from hdsapp.config import Settings
from hdsapp.core.crypto.aad import AssociatedData
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.crypto.providers.local import LocalKeyProvider
from hdsapp.core.db import Database
from tests.core.crypto.keyring_support import message

CONTENT = sa.table(
    "test_content",
    sa.column("id", sa.String()),
    sa.column("group_id", sa.String()),
    sa.column("thread_id", sa.String()),
    sa.column("body", sa.LargeBinary()),
)


@dataclass
class Store:
    database: Database
    directory: Path
    keyring: Keyring
    sealed: dict[str, tuple[AssociatedData, bytes]] = field(default_factory=dict)

    def fresh_keyring(self, **options: object) -> Keyring:
        """Another keyring on the same root key and ledger file: another process's view."""
        return Keyring(
            LocalKeyProvider(self.directory / "root-keys"),
            ledger_file=self.directory / "shred-ledger.jsonl",
            **options,  # type: ignore[arg-type]
        )

    def seed(
        self, group_id: uuid.UUID, thread_ids: list[uuid.UUID | None], per_thread: int = 3
    ) -> None:
        """Seal ``per_thread`` records per thread (None: the group's own records), store them."""
        with self.database.unit_of_work() as session:
            for thread_id in thread_ids:
                for _ in range(per_thread):
                    record_id = str(uuid.uuid4())
                    aad = message(group_id, thread_id, record_id)
                    body = self.keyring.seal(session, aad=aad, plaintext=record_id.encode())
                    self.sealed[record_id] = (aad, body)
                    session.execute(
                        sa.insert(CONTENT).values(
                            id=record_id,
                            group_id=str(group_id),
                            thread_id=str(thread_id) if thread_id else None,
                            body=body,
                        )
                    )

    def stored(self) -> dict[str, bytes]:
        with self.database.unit_of_work() as session:
            return {
                row.id: bytes(row.body)
                for row in session.execute(sa.select(CONTENT.c.id, CONTENT.c.body))
            }

    def unreadable(self, keyring: Keyring | None = None) -> set[str]:
        """Ids of the stored records that do not open (all others must open to their id)."""
        keyring = keyring or self.keyring
        failed = set()
        with self.database.unit_of_work() as session:
            for record_id, body in self.stored().items():
                aad = self.sealed[record_id][0]
                try:
                    assert keyring.open(session, aad=aad, envelope=body) == record_id.encode()
                except Exception:
                    failed.add(record_id)
        return failed

    def ids_of(self, thread_id: uuid.UUID | None) -> set[str]:
        return {
            record_id
            for record_id, (aad, _) in self.sealed.items()
            if aad.thread_id == (str(thread_id) if thread_id else None)
        }


def create_content_table(database: Database) -> None:
    with database.unit_of_work() as session:
        session.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS test_content (id VARCHAR(36) PRIMARY KEY,"
                " group_id VARCHAR(36), thread_id VARCHAR(36), body "
                + ("BYTEA" if database.backend == "postgresql" else "BLOB")
                + ")"
            )
        )


@pytest.fixture
def store(tmp_path: Path, database: Database) -> Store:
    create_content_table(database)
    LocalKeyProvider.create(tmp_path / "root-keys")
    keyring = Keyring(
        LocalKeyProvider(tmp_path / "root-keys"), ledger_file=tmp_path / "shred-ledger.jsonl"
    )
    return Store(database=database, directory=tmp_path, keyring=keyring)


def keys_env(settings: Settings) -> dict[str, str]:
    """Environment for `hdsapp` subprocesses over the test's database and data directory."""
    return {
        "HDS_DATA_DIR": str(settings.data_dir),
        "HDS_DATABASE_URL": settings.effective_database_url,
        "HDS_ROOT_KEY_FILE": str(settings.data_dir / "root-keys"),
        "HDS_SHRED_LEDGER_FILE": str(settings.data_dir / "shred-ledger.jsonl"),
    }
