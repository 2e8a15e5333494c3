"""Background key operations. Each takes identifiers only, opens its own units of work, and is
idempotent: a task redelivered after a crash resumes the same rotation (the target version is an
argument) instead of starting another."""

from __future__ import annotations

import uuid

from celery import shared_task

from hdsapp.config import get_settings
from hdsapp.core.actor import system_actor
from hdsapp.core.crypto.keyring import keyring_for
from hdsapp.core.db import database_for
from hdsapp.keys import service


@shared_task(name="hdsapp.keys.rotate", autoretry_for=(Exception,), max_retries=5)
def rotate(group_id: str, kek_version: int, destroy_old: int = 0) -> int:
    """Bring a group's KEK to ``kek_version`` and re-wrap its data keys (then, if
    ``destroy_old``, destroy the versions no longer used); returns how many were re-wrapped."""
    settings = get_settings()
    report = service.rotate_group(
        database=database_for(settings.effective_database_url),
        keyring=keyring_for(settings),
        actor=system_actor(),
        group_id=uuid.UUID(group_id),
        target=kek_version,
        destroy_old=bool(destroy_old),
    )
    return report.rewrapped


@shared_task(name="hdsapp.keys.rotate_root", autoretry_for=(Exception,), max_retries=5)
def rotate_root(root_version: int, destroy_old: int = 0) -> int:
    """Bring the root key to ``root_version`` and re-wrap every KEK and blind-index key (then,
    if ``destroy_old``, destroy the old root versions in the provider)."""
    settings = get_settings()
    report = service.rotate_root(
        database=database_for(settings.effective_database_url),
        keyring=keyring_for(settings),
        actor=system_actor(),
        target=root_version,
        destroy_old=bool(destroy_old),
    )
    return report.rewrapped


@shared_task(name="hdsapp.keys.destroy_old", autoretry_for=(Exception,), max_retries=5)
def destroy_old(scope: str) -> list[int]:
    """Destroy the old versions nothing uses any more: ``scope`` is a group id or "root"."""
    settings = get_settings()
    database = database_for(settings.effective_database_url)
    keyring = keyring_for(settings)
    if scope == "root":
        return service.destroy_old_root_keys(
            database=database, keyring=keyring, actor=system_actor()
        )
    return service.destroy_old_group_keys(
        database=database, keyring=keyring, actor=system_actor(), group_id=uuid.UUID(scope)
    )
