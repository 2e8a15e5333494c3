"""Housekeeping jobs: each takes identifiers only and opens its own unit of work."""

import socket

from celery import shared_task

from hdsapp.config import get_settings
from hdsapp.core.db import database_for
from hdsapp.system import repository


@shared_task(name="hdsapp.system.heartbeat", autoretry_for=(Exception,), max_retries=3)
def heartbeat(name: str = "scheduler") -> int:
    """Record that the worker ran a scheduled job; returns the beat count."""
    settings = get_settings()
    with database_for(settings.effective_database_url).unit_of_work() as session:
        beat = repository.record_heartbeat(session, name=name, hostname=socket.gethostname())
        return beat.beats
