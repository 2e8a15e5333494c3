"""An in-memory stand-in for hdsapp.core.crypto.keyring.Keyring, built from the same crypto
primitives (envelope v1, blind indexes), for the patients tests until the key store lands."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlmodel import Session

from hdsapp.core.crypto import blind_index
from hdsapp.core.crypto.aad import AssociatedData
from hdsapp.core.crypto.envelope import open_envelope, seal
from hdsapp.core.crypto.keys import generate_data_key


class FakeKeyring:
    def __init__(self) -> None:
        self.data_keys: dict[str, bytes] = {}
        self.index_keys: dict[str, bytes] = {}
        self.seals = 0

    def create_group_keys(self, session: Session, *, group_id: uuid.UUID) -> None:
        del session
        self.data_keys.setdefault(str(group_id), generate_data_key())
        self.index_keys.setdefault(str(group_id), generate_data_key())

    def _key(self, group_id: str | None) -> bytes:
        assert group_id is not None
        return self.data_keys.setdefault(group_id, generate_data_key())

    def seal(self, session: Session, *, aad: AssociatedData, plaintext: bytes) -> bytes:
        del session
        self.seals += 1
        return seal(self._key(aad.group_id), plaintext, key_version=1, aad=aad)

    def open(self, session: Session, *, aad: AssociatedData, envelope: bytes) -> bytes:
        del session
        return open_envelope(self._key(aad.group_id), envelope, aad=aad)

    def blind_index(
        self, session: Session, *, group_id: uuid.UUID, purpose: str, value: str
    ) -> bytes:
        del session
        key = self.index_keys.setdefault(str(group_id), generate_data_key())
        first, _, second = value.partition("|")
        if purpose == "ins":
            return blind_index.ins_index(key, system=first, value=second)
        if purpose == "name-birthdate":
            return blind_index.name_birthdate_index(
                key, family_name=first, birth_date=dt.date.fromisoformat(second)
            )
        raise ValueError(purpose)
