"""Readiness: can this process reach what it needs to serve requests and run jobs?"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from sqlalchemy.exc import SQLAlchemyError

from hdsapp import migrations
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.db import Database
from hdsapp.keys import service as keys
from hdsapp.system import repository
from hdsapp.system.schemas import Check, Readiness

log = logging.getLogger(__name__)


def check_database(database: Database) -> list[Check]:
    try:
        with database.session() as session:
            repository.ping(session)
    except SQLAlchemyError as exc:
        log.warning("readiness: database unreachable", extra={"error": type(exc).__name__})
        return [
            Check(name="database", ok=False, reason="database unreachable"),
            Check(name="schema", ok=False, reason="database unreachable"),
        ]
    if not migrations.is_up_to_date(database.url):
        return [
            Check(name="database", ok=True),
            Check(name="schema", ok=False, reason="migrations pending: run `hdsapp migrate`"),
        ]
    return [Check(name="database", ok=True), Check(name="schema", ok=True)]


def check_broker(celery: Celery) -> Check:
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
            # Virtual transports connect lazily: declaring the queue makes them touch storage.
            channel: Any = connection.default_channel
            channel.queue_declare(queue="celery", passive=False)
    except Exception as exc:
        log.warning("readiness: broker unreachable", extra={"error": type(exc).__name__})
        return Check(name="broker", ok=False, reason="broker unreachable")
    return Check(name="broker", ok=True)


def check_keys(database: Database, keyring: Keyring) -> Check:
    reason = keys.readiness(database=database, keyring=keyring)
    return Check(name="keys", ok=reason is None, reason=reason)


def readiness(*, database: Database, celery: Celery, keyring: Keyring | None = None) -> Readiness:
    checks = [*check_database(database), check_broker(celery)]
    if keyring is not None and checks[1].ok:
        checks.append(check_keys(database, keyring))
    return Readiness(ready=all(c.ok for c in checks), checks=checks)
