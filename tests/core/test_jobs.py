"""Jobs go through a real Celery worker process, on the embedded broker and on Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from hdsapp.config import Settings
from hdsapp.core.db import Database
from hdsapp.core.jobs import configure_celery, enqueue
from hdsapp.system import repository
from tests.conftest import REDIS_URL, make_settings, require_service


@pytest.fixture(params=["embedded", "redis"])
def broker_settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    if request.param == "embedded":
        return make_settings(tmp_path, database_url=database_url)
    if not REDIS_URL:
        require_service("HDS_TEST_REDIS_URL")
    # A queue of its own per test run, so concurrent runs never steal each other's jobs.
    return make_settings(tmp_path, database_url=database_url, broker_url=REDIS_URL)


@pytest.fixture
def worker(broker_settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "HDS_DATA_DIR": str(broker_settings.data_dir),
        "HDS_DATABASE_URL": broker_settings.effective_database_url,
        "HDS_BROKER_URL": broker_settings.broker_url,
        "HDS_WORKER_CONCURRENCY": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "hdsapp", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield process
    process.terminate()
    process.wait(timeout=30)


def _wait_for_beat(database: Database, name: str, timeout: float = 30.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with database.session() as session:
            beat = repository.get_heartbeat(session, name)
            if beat is not None:
                return beat.beats
        time.sleep(0.2)
    return None


def _fail_after_enqueue(database: Database, name: str) -> None:
    with database.unit_of_work() as session:
        enqueue(session, "hdsapp.system.heartbeat", name)
        raise RuntimeError("the request failed")


def test_job_runs_in_a_real_worker_after_commit_only(
    broker_settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    configure_celery(broker_settings)
    database = Database(broker_settings.effective_database_url)
    try:
        with pytest.raises(RuntimeError, match="the request failed"):
            _fail_after_enqueue(database, "rolled-back")
        with database.unit_of_work() as session:
            enqueue(session, "hdsapp.system.heartbeat", "committed")
        assert _wait_for_beat(database, "committed") == 1
        # The worker handles jobs in order: the dropped one would have run before.
        assert _wait_for_beat(database, "rolled-back", timeout=1.0) is None
    finally:
        database.dispose()
    assert worker.poll() is None


def test_enqueue_refuses_anything_but_identifiers(database: Database) -> None:
    with database.session() as session:
        with pytest.raises(TypeError):
            enqueue(session, "hdsapp.system.heartbeat", {"family": "Dupont"})
        with pytest.raises(TypeError):
            enqueue(session, "hdsapp.system.heartbeat", "x" * 200)


def test_nothing_is_sent_without_a_commit(database: Database) -> None:
    session: Session
    with database.session() as session:
        session.connection()
        enqueue(session, "hdsapp.system.heartbeat", "pending")
        assert session.info["hds_pending_jobs"] == [("hdsapp.system.heartbeat", ("pending",))]
        session.rollback()
        assert "hds_pending_jobs" not in session.info
