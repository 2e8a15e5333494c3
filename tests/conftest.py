"""Fixtures shared by the whole suite.

Every test that asks for a database runs once per backend: SQLite always, PostgreSQL when
``HDS_TEST_DATABASE_URL`` (an admin URL) is set. Each test gets a fresh database cloned from a
migrated template, so tests are isolated even when the code under test commits.
``HDS_TEST_REQUIRE_SERVICES=1`` (set by CI) turns a missing service into a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from hdsapp import migrations
from hdsapp.app import create_app
from hdsapp.config import Settings
from hdsapp.core.db import Database

REQUIRE_SERVICES = os.environ.get("HDS_TEST_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("HDS_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("HDS_TEST_REDIS_URL", "")
BACKENDS = ["sqlite", "postgresql"] if PG_ADMIN_URL else ["sqlite"]
REPO_ROOT = Path(__file__).resolve().parents[1]
TESTDATA = REPO_ROOT.parent / "shared" / "testdata"


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_SERVICES:
        missing = [
            name
            for name, value in (
                ("HDS_TEST_DATABASE_URL", PG_ADMIN_URL),
                ("HDS_TEST_REDIS_URL", REDIS_URL),
            )
            if not value
        ]
        if missing:
            raise pytest.UsageError(f"HDS_TEST_REQUIRE_SERVICES=1 but {', '.join(missing)} not set")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"hdsapp backends: {', '.join(BACKENDS)}; redis: {REDIS_URL or 'not configured'}",
    ]


def require_service(name: str) -> None:
    """Skip for a developer without the service; fail in CI."""
    message = f"{name} is not configured"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def _pg_url(database: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


def _pg_admin(statement: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


class Templates:
    """One migrated template database per backend, cloned for each test."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pg_template = f"hds_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.sqlite_template: Path | None = None
        self.pg_ready = False
        self.clones: list[str] = []

    def clone(self, backend: str) -> str:
        if backend == "sqlite":
            if self.sqlite_template is None:
                self.sqlite_template = self.workdir / "template.sqlite3"
                migrations.upgrade(f"sqlite:///{self.sqlite_template}")
            target = self.workdir / f"t_{uuid.uuid4().hex}.sqlite3"
            shutil.copyfile(self.sqlite_template, target)
            return f"sqlite:///{target}"
        if not self.pg_ready:
            _pg_admin(f'CREATE DATABASE "{self.pg_template}"')
            migrations.upgrade(_pg_url(self.pg_template))
            self.pg_ready = True
        name = f"hds_t_{uuid.uuid4().hex[:16]}"
        _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.pg_template}"')
        self.clones.append(name)
        return _pg_url(name)

    def drop(self, url: str) -> None:
        if url.startswith("postgresql"):
            name = make_url(url).database
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.clones.remove(str(name))

    def close(self) -> None:
        for name in list(self.clones):
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self.pg_ready:
            _pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_template}" WITH (FORCE)')


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    store = Templates(tmp_path_factory.mktemp("db-templates"))
    yield store
    store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def database_url(backend: str, templates: Templates) -> Iterator[str]:
    url = templates.clone(backend)
    yield url
    templates.drop(url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url=database_url)


def make_settings(data_dir: Path, **values: object) -> Settings:
    return Settings.model_validate({"data_dir": data_dir, **values})


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = Database(settings.effective_database_url)
    yield db
    db.dispose()


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client
