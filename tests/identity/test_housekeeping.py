"""The hourly purge deletes only what has expired."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from hdsapp.core.db import Database, utcnow
from hdsapp.core.jobs import configure_celery
from hdsapp.identity import service
from tests.identity.conftest import Account, Browser, browser_for, rows, shift_session


def test_purge_keeps_live_rows_and_drops_expired_ones(
    browser: Browser, client: TestClient, account: Account, database: Database
) -> None:
    client.get("/api/v1/auth/oidc/none/login")  # 404, but counted by the per-IP limit
    login_attempt = {"email": "ghost@example.org", "password": "x" * 12, "otp": "000000"}
    client.post("/api/v1/auth/login", json=login_attempt)
    with database.unit_of_work() as session:
        assert set(service.purge_expired(session=session, now=utcnow()).values()) == {0}
    [live] = rows(database, "SELECT id FROM auth_session")
    old = browser_for(client, account)  # rotates: the first session is revoked now
    assert old.cookie
    shift_session(
        database,
        str(live["id"]),
        revoked_at=dt.timedelta(days=31),
    )
    later = utcnow() + dt.timedelta(days=2)
    with database.unit_of_work() as session:
        deleted = service.purge_expired(session=session, now=later)
    assert deleted["auth_session"] == 1
    assert deleted["rate_limit_counter"] == 1
    assert deleted["login_throttle"] == 1
    assert len(rows(database, "SELECT id FROM auth_session")) == 1
    assert client.get("/api/v1/me").status_code == 200


def test_the_purge_is_scheduled(settings: object) -> None:
    from hdsapp.config import Settings

    assert isinstance(settings, Settings)
    schedule = configure_celery(settings).conf.beat_schedule
    assert schedule["identity-purge"]["task"] == "hdsapp.identity.purge"
