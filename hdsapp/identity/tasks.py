"""Housekeeping of the identity tables, scheduled hourly by beat (hdsapp.core.jobs)."""

from __future__ import annotations

from celery import shared_task

from hdsapp.config import get_settings
from hdsapp.core.db import database_for, utcnow
from hdsapp.identity import service


@shared_task(name="hdsapp.identity.purge", ignore_result=True)
def purge() -> dict[str, int]:
    """Delete expired OpenID login states, rate-limit counters, idle throttles and sessions
    ended 30 days ago. Idempotent."""
    settings = get_settings()
    with database_for(settings.effective_database_url).unit_of_work() as session:
        return service.purge_expired(session=session, now=utcnow())
