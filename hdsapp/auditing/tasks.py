"""The checkpoint signer (and, in sequencer mode, the sequencer): scheduled every
``HDS_AUDIT_CHECKPOINT_SECONDS`` (1 s) by beat, which ``hdsapp run`` embeds in its worker.
Idempotent: it places what is pending and signs only when the tree grew."""

from __future__ import annotations

from pathlib import Path

from celery import shared_task

from audit.note import Signer
from hdsapp.auditing import service
from hdsapp.auditing.signing import load_signer
from hdsapp.config import Settings, get_settings
from hdsapp.core.db import database_for

_signers: dict[tuple[Path, str], Signer] = {}


def _signer(settings: Settings) -> Signer:
    key = (settings.audit_signing_key_path, settings.effective_audit_origin)
    if key not in _signers:
        _signers[key] = load_signer(settings)
    return _signers[key]


@shared_task(name="hdsapp.auditing.checkpoint", ignore_result=True)
def checkpoint() -> int | None:
    """Sign a checkpoint of the current tree if it grew; returns the covered size."""
    settings = get_settings()
    signer = _signer(settings)
    database = database_for(settings.effective_database_url)
    return service.checkpoint_now(database=database, signer=signer).checkpoint_size
