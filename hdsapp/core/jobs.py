"""Background jobs: the Celery app and enqueue-after-commit.

A job is enqueued on the unit of work's session and sent only once that session commits; a
rollback drops it, so a worker never sees a job about data that does not exist. Task arguments
are identifiers only (never health data): ``enqueue`` refuses anything else.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import Celery, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession

from hdsapp.config import Settings
from hdsapp.core.modules import domain_module_names

log = logging.getLogger(__name__)

_PENDING_KEY = "hds_pending_jobs"
_ID_TYPES = (str, int, uuid.UUID)
MAX_ID_ARG_LENGTH = 64


def configure_celery(settings: Settings) -> Celery:
    """A Celery app for these settings, made the process default.

    Tasks are declared with ``shared_task`` so they bind to whichever app is current: a fresh
    app per configuration means no connection pool outlives a change of broker.
    """
    celery_app = Celery("hdsapp", set_as_current=True)
    celery_app.conf.update(
        broker_url=settings.effective_broker_url,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        broker_transport_options=_transport_options(settings),
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A task interrupted by a crash runs again: tasks are idempotent.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        enable_utc=True,
        timezone="UTC",
        imports=domain_module_names("tasks"),
        beat_schedule={
            "heartbeat": {
                "task": "hdsapp.system.heartbeat",
                "schedule": settings.heartbeat_seconds,
            },
            # Every entry is under a signed checkpoint within seconds; a late run is
            # dropped rather than queued (the next one covers the same entries).
            "audit-checkpoint": {
                "task": "hdsapp.auditing.checkpoint",
                "schedule": settings.audit_checkpoint_seconds,
                "options": {"expires": max(5.0, 5 * settings.audit_checkpoint_seconds)},
            },
            "identity-purge": {"task": "hdsapp.identity.purge", "schedule": 3600.0},
        },
    )
    celery_app.set_default()
    return celery_app


def _transport_options(settings: Settings) -> dict[str, Any]:
    if settings.embedded_broker:
        # kombu's SQLAlchemy transport hands every option to create_engine(): pass none.
        return {}
    return {"socket_connect_timeout": 3, "socket_timeout": 5}


def enqueue(session: OrmSession, task_name: str, *args: Any) -> None:
    """Send ``task_name(*args)`` once ``session`` commits; drop it if it rolls back."""
    for arg in args:
        if not isinstance(arg, _ID_TYPES) or (
            isinstance(arg, str) and len(arg) > MAX_ID_ARG_LENGTH
        ):
            raise TypeError("task arguments must be identifiers (str, int or UUID)")
    pending: list[tuple[str, tuple[Any, ...]]] = session.info.setdefault(_PENDING_KEY, [])
    pending.append((task_name, tuple(str(a) if isinstance(a, uuid.UUID) else a for a in args)))


@event.listens_for(OrmSession, "after_commit")
def _send_pending(session: OrmSession) -> None:
    pending = session.info.pop(_PENDING_KEY, [])
    for task_name, args in pending:
        try:
            current_app.send_task(task_name, args=list(args))
        except Exception:
            # The change is committed; the job is lost. Say so without its arguments.
            log.exception("could not enqueue job", extra={"task": task_name})


@event.listens_for(OrmSession, "after_soft_rollback")
def _drop_pending(session: OrmSession, _previous_transaction: object) -> None:
    session.info.pop(_PENDING_KEY, None)
