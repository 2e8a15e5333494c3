"""Helpers shared by the key store tests (tests/core/crypto/test_keyring*.py, tests/keys/)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.crypto.providers.local import LocalKeyProvider


def local_keyring(directory: Path, **options: Any) -> Keyring:
    path = directory / "root-keys"
    provider = LocalKeyProvider(path) if path.exists() else LocalKeyProvider.create(path)
    return Keyring(provider, **options)


def message(
    group_id: uuid.UUID, thread_id: uuid.UUID | None, record_id: object = "m1"
) -> AssociatedData:
    return AssociatedData(
        RecordKind.MESSAGE if thread_id else RecordKind.PATIENT_IDENTITY,
        group_id=str(group_id),
        thread_id=str(thread_id) if thread_id else None,
        record_id=str(record_id),
    )


def data_keys(session: Session) -> list[Any]:
    return list(
        session.execute(
            sa.text(
                "SELECT owner_id, version, group_id, thread_id, kek_version, seal_count, status"
                " FROM data_key ORDER BY owner_id, version"
            )
        ).all()
    )
