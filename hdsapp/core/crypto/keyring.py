"""The key store: group KEKs and data keys in the database, always wrapped; seal and open through
them, in the caller's unit of work (DESIGN.md §5, "Encryption at rest").

One ``Keyring`` per process (``keyring_for(settings)``; the app keeps it in
``app.state.keyring``). Every method takes the session of the caller's unit of work and never
commits: key rows created for a seal commit or roll back with the sealed record.

Hierarchy: root key (provider: local file or PKCS#11 token) -> one KEK per care group and
version (``group_key``) -> one data key per case thread, or per group for the group's own
records such as patient identities (``data_key``, per version) -> content (envelope v1).
Each group also has a blind-index key (``blind_index_key``), wrapped by the root key under
associated data of its own.

- ``seal``/``open``: ``aad.group_id`` and ``aad.thread_id`` pick the key (``thread_id`` None:
  the group's own data key). The envelope names the data key version; the caller's associated
  data names the record (kind, ids) and leaves the versions out. Keys are created on first use
  if ``create_group_keys``/``create_thread_key`` were not called, except for a thread or group
  in the shred ledger, which never gets a key again.
- Every seal counts itself (``UPDATE ... SET seal_count = seal_count + n ... RETURNING``, in the
  caller's transaction, so concurrent writers queue on the row); a version that would pass
  ``HDS_DEK_MAX_SEALS`` is retired and the next one created. Retired versions keep opening.
- Every open reads the data key's row by primary key in the caller's transaction (once per
  transaction and key), so a key shredded by another process stops opening at its next
  request, whatever that process has cached. Unwrapped keys are cached (``KeyCache``, short
  TTL, bounded); ``shred_thread`` drops them from this process at once.
- Errors are ``CryptoError``s whose messages carry ids and versions only, never key material,
  plaintext or associated data.

Rotation, destruction of old versions and shredding are operations of ``hdsapp.keys`` built on
the ``*_rotation``/``rewrap_*``/``destroy_*``/``shred_*`` methods here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction

from hdsapp.core.crypto import blind_index as blind
from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.cache import DEFAULT_MAX_ENTRIES, DEFAULT_TTL_SECONDS, KeyCache
from hdsapp.core.crypto.chunks import MAX_CHUNK_SIZE, open_chunks
from hdsapp.core.crypto.envelope import KEY_BYTES, key_version_of, open_envelope, seal
from hdsapp.core.crypto.errors import (
    CryptoError,
    IntegrityError,
    KeyFileError,
    MissingKeyError,
    ProviderError,
)
from hdsapp.core.crypto.keys import (
    generate_data_key,
    rewrap_group_kek,
    unwrap_group_kek,
    wrap_group_kek,
)
from hdsapp.core.crypto.providers.base import KeyProvider
from hdsapp.core.crypto.providers.local import LocalKeyProvider
from hdsapp.core.crypto.providers.pkcs11 import Pkcs11Config, Pkcs11KeyProvider
from hdsapp.core.crypto.usage import DEFAULT_SEAL_LIMIT
from hdsapp.core.db import utcnow
from hdsapp.models.blind_index_key import BlindIndexKey
from hdsapp.models.data_key import DataKey
from hdsapp.models.group_key import GroupKey
from hdsapp.models.key_root_version import KeyRootVersion
from hdsapp.models.shred_ledger import ShredLedger

if TYPE_CHECKING:
    from sqlmodel import Session

    from hdsapp.config import Settings
    from hdsapp.core.actor import Actor

log = logging.getLogger(__name__)

PURPOSES = ("ins", "name-birthdate")
_RESERVE_ATTEMPTS = 64
_MEMO = "hds_keyring_rows"
_PENDING = "hds_keyring_pending"

_DK: sa.Table = DataKey.metadata.tables["data_key"]
_GK: sa.Table = GroupKey.metadata.tables["group_key"]
_BK: sa.Table = BlindIndexKey.metadata.tables["blind_index_key"]
_RV: sa.Table = KeyRootVersion.metadata.tables["key_root_version"]
_SL: sa.Table = ShredLedger.metadata.tables["shred_ledger"]


class KeyShredded(MissingKeyError):
    """The thread's or group's keys were crypto-shredded: nothing of it opens, nothing is sealed
    for it again."""


class RootProvider(KeyProvider, Protocol):
    """A ``KeyProvider`` that can also destroy an old root version (local, PKCS#11)."""

    def destroy_version(self, version: int) -> None: ...


# -- where the root key comes from -----------------------------------------------------------


@dataclass(frozen=True)
class ProviderSpec:
    """How to reach the root key provider (from ``Settings``); opening it is deferred."""

    kind: Literal["local", "pkcs11"] = "local"
    root_key_file: Path | None = None
    pkcs11_module: str = ""
    pkcs11_token_label: str = ""
    pkcs11_key_label: str = "hdsapp-root"
    pkcs11_pin_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderSpec:
        return cls(
            kind=settings.key_provider,
            root_key_file=settings.root_key_path,
            pkcs11_module=settings.pkcs11_module,
            pkcs11_token_label=settings.pkcs11_token_label,
            pkcs11_key_label=settings.pkcs11_key_label,
            pkcs11_pin_file=settings.pkcs11_pin_file,
        )

    def open(self, *, provision: bool = False) -> tuple[RootProvider, bool]:
        """The provider, and whether a first root version was created (only with ``provision``,
        only if there is none yet)."""
        if self.kind == "pkcs11":
            if not (self.pkcs11_module and self.pkcs11_token_label and self.pkcs11_pin_file):
                raise ProviderError(
                    "PKCS#11 provider needs HDS_PKCS11_MODULE, HDS_PKCS11_TOKEN_LABEL and "
                    "HDS_PKCS11_PIN_FILE"
                )
            token = Pkcs11KeyProvider(
                Pkcs11Config(
                    module_path=self.pkcs11_module,
                    token_label=self.pkcs11_token_label,
                    key_label=self.pkcs11_key_label,
                    pin_file=self.pkcs11_pin_file,
                )
            )
            created = False
            if provision and not token.describe()["versions"]:
                token.rotate()
                created = True
            return token, created
        path = self.root_key_file
        if path is None:
            raise ProviderError("local provider needs a root key file (HDS_ROOT_KEY_FILE)")
        if provision and not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                return LocalKeyProvider.create(path), True
            except KeyFileError:
                if not path.exists():  # not a lost race with another process: a real failure
                    raise
        return LocalKeyProvider(path), False

    def describe(self) -> dict[str, object]:
        if self.kind == "pkcs11":
            return {
                "kind": "pkcs11",
                "module_path": self.pkcs11_module,
                "token_label": self.pkcs11_token_label,
                "key_label": self.pkcs11_key_label,
            }
        return {"kind": "local", "path": str(self.root_key_file)}


def ensure_root_key(settings: Settings) -> str | None:
    """Create the first root version if the configured provider has none (``hdsapp init``);
    returns what was created (the key file's path, or the token key's label), else None."""
    spec = ProviderSpec.from_settings(settings)
    provider, created = spec.open(provision=True)
    close = getattr(provider, "close", None)
    if close is not None:
        close()
    if not created:
        return None
    if spec.kind == "pkcs11":
        return f"pkcs11:{spec.pkcs11_token_label}/{spec.pkcs11_key_label}"
    return str(spec.root_key_file)


# -- the shred ledger's copy outside the database ---------------------------------------------


@dataclass(frozen=True)
class ShredRecord:
    """One entry of the shred ledger (no reason here: the file copy keeps ids and times only)."""

    id: uuid.UUID
    group_id: uuid.UUID
    thread_id: uuid.UUID | None
    shredded_at: dt.datetime

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": str(self.id),
                "group_id": str(self.group_id),
                "thread_id": str(self.thread_id) if self.thread_id else None,
                "shredded_at": self.shredded_at.astimezone(dt.UTC).isoformat(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str) -> ShredRecord:
        data = json.loads(line)
        return cls(
            id=uuid.UUID(data["id"]),
            group_id=uuid.UUID(data["group_id"]),
            thread_id=uuid.UUID(data["thread_id"]) if data.get("thread_id") else None,
            shredded_at=dt.datetime.fromisoformat(data["shredded_at"]),
        )


class ShredLedgerFile:
    """An append-only JSON-lines copy of the shred ledger, kept outside the database (next to
    the root key file, off the database volume), so that restoring a database backup taken
    before a shred cannot bring the shredded keys back: start-up re-applies this file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> list[ShredRecord]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(ShredRecord.from_json(line))
            except (ValueError, KeyError, TypeError):
                # A torn last line (crash while appending) must not stop the others applying.
                log.warning("shred ledger file: unreadable line", extra={"line": number})
        return records

    def append(self, records: Iterable[ShredRecord]) -> None:
        data = "".join(record.to_json() + "\n" for record in records).encode()
        if not data:
            return
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            fd = os.open(self.path, flags, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)


# -- the keyring -----------------------------------------------------------------------------


class _DekRow(NamedTuple):
    version: int
    group_id: uuid.UUID
    thread_id: uuid.UUID | None
    kek_version: int
    wrapped: bytes


@dataclass(frozen=True, slots=True)
class _Scope:
    group_id: uuid.UUID
    thread_id: uuid.UUID | None

    @property
    def owner(self) -> uuid.UUID:
        return self.thread_id or self.group_id


@dataclass(frozen=True)
class ShredResult:
    thread_id: uuid.UUID | None
    group_id: uuid.UUID
    key_versions: int
    already: bool
    record: ShredRecord


class Keyring:
    """The key store (module docstring). Thread-safe; one per process."""

    def __init__(
        self,
        provider: RootProvider | ProviderSpec,
        *,
        max_seals: int = DEFAULT_SEAL_LIMIT,
        cache_ttl: float = DEFAULT_TTL_SECONDS,
        cache_entries: int = DEFAULT_MAX_ENTRIES,
        ledger_file: Path | None = None,
        auto_provision: bool = False,
    ) -> None:
        if not 1 <= max_seals <= 2**32:
            raise ValueError("max_seals must be in [1, 2**32]")
        self.max_seals = max_seals
        self.spec: ProviderSpec | None = None
        self._provider: RootProvider | None = None
        if isinstance(provider, ProviderSpec):
            self.spec = provider
        else:
            self._provider = provider
        self._auto_provision = auto_provision
        self._lock = threading.Lock()
        self._ciphers: KeyCache[AESGCM] = KeyCache(max_entries=cache_entries, ttl_seconds=cache_ttl)
        self._index_keys: KeyCache[bytes] = KeyCache(
            max_entries=cache_entries, ttl_seconds=cache_ttl
        )
        self.ledger_file = ShredLedgerFile(ledger_file) if ledger_file else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        return cls(
            ProviderSpec.from_settings(settings),
            max_seals=settings.dek_max_seals,
            cache_ttl=settings.key_cache_seconds,
            cache_entries=settings.key_cache_entries,
            ledger_file=settings.shred_ledger_path,
            # A first root key is made by `hdsapp init`; in development also at first use,
            # and only while the database holds no wrapped key.
            auto_provision=settings.env != "production",
        )

    # -- the contract ------------------------------------------------------------------------

    def create_group_keys(self, session: Session, *, group_id: uuid.UUID) -> None:
        """KEK v1 (wrapped by the root key), the group's own data key and its blind-index key.
        Idempotent; refused (``KeyShredded``) for a group whose keys were shredded."""
        if self._shredded(session, group_id, None):
            raise KeyShredded(f"the keys of group {group_id} were shredded")
        exists = session.execute(
            sa.select(_GK.c.version).where(_GK.c.group_id == group_id).limit(1)
        ).first()
        if exists is None:
            kek = generate_data_key()
            wrapped = wrap_group_kek(self.root(session), kek, group_id=str(group_id), kek_version=1)
            root_version = self._record_root(session, key_version_of(wrapped))
            if _insert_ignore(
                session,
                _GK,
                group_id=group_id,
                version=1,
                wrapped=wrapped,
                root_version=root_version,
                status="active",
                created_at=utcnow(),
            ):
                self._ciphers.put(("kek", group_id, 1), AESGCM(kek), owners=(group_id,))
        scope = _Scope(group_id, None)
        if self._latest_dek(session, scope.owner) is None:
            self._new_dek(session, scope, version=1, seal_count=0)
        if session.execute(_SELECT_INDEX_KEY, {"group": group_id}).first() is None:
            index_key = generate_data_key()
            wrapped = self.root(session).wrap(index_key, aad=_index_aad(group_id, 1))
            root_version = self._record_root(session, key_version_of(wrapped))
            _insert_ignore(
                session,
                _BK,
                group_id=group_id,
                version=1,
                wrapped=wrapped,
                root_version=root_version,
                created_at=utcnow(),
            )

    def create_thread_key(
        self, session: Session, *, group_id: uuid.UUID, thread_id: uuid.UUID
    ) -> None:
        """Data key v1 of a thread (and the group's keys if missing). Idempotent; refused for a
        shredded thread (``KeyShredded``) or a thread already keyed in another group."""
        scope = _Scope(group_id, thread_id)
        latest = self._latest_dek(session, thread_id)
        if latest is not None:
            if latest.group_id != group_id:
                raise IntegrityError(f"thread {thread_id} is keyed in another group")
            return
        if self._shredded(session, group_id, thread_id):
            raise KeyShredded(f"the keys of thread {thread_id} were shredded")
        self._new_dek(session, scope, version=1, seal_count=0)

    def seal(self, session: Session, *, aad: AssociatedData, plaintext: bytes) -> bytes:
        """Seal ``plaintext`` for the record ``aad`` names, with the current data key of
        ``aad.thread_id`` (or of ``aad.group_id``'s own records when it is None)."""
        _check_record(aad)
        slot = _memo(session).get(("seal", aad.group_id, aad.thread_id))
        if slot is not None and slot[1] > 0:  # sealing again in this transaction
            slot[1] -= 1
            return seal(slot[3], plaintext, key_version=slot[0], aad=aad)
        version, cipher = self._take(session, aad)
        return seal(cipher, plaintext, key_version=version, aad=aad)

    def open(self, session: Session, *, aad: AssociatedData, envelope: bytes) -> bytes:
        """Open an envelope sealed by ``seal`` with the same ``aad``. ``IntegrityError`` if it
        was altered or belongs to another record; ``MissingKeyError`` (``KeyShredded``) if its
        key version is gone."""
        _check_record(aad)
        version = key_version_of(envelope)
        # Once its row is confirmed in this transaction, a key is found by the record's ids.
        cipher = _memo(session).get((aad.group_id, aad.thread_id, version))
        if cipher is None:
            cipher = self._dek(session, _scope_of(aad), version)
        return open_envelope(cipher, envelope, aad=aad)

    def seal_chunks(
        self,
        session: Session,
        *,
        aad: AssociatedData,
        plaintext: Iterable[bytes],
        chunk_size: int = MAX_CHUNK_SIZE,
    ) -> Iterator[bytes]:
        """Seal a stream (an attachment) as envelopes of at most ``chunk_size`` plaintext bytes,
        in the layout of ``core.crypto.chunks`` (``open_chunks`` and ``read_sealed_chunks``
        read it). Each chunk is one counted seal, so a long stream may move on to the next
        data key version; every envelope names its own. Iterate inside the unit of work."""
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in [1, {MAX_CHUNK_SIZE}]")
        _scope_of(aad)  # refuse an identity that picks no key before reading the stream
        index = 0
        pending: bytes | None = None
        for piece in _rechunk(plaintext, chunk_size):
            if pending is not None:
                yield self._seal_chunk(session, aad, index, pending, last=False)
                index += 1
            pending = piece
        yield self._seal_chunk(session, aad, index, pending or b"", last=True)

    def open_chunks(
        self, session: Session, *, aad: AssociatedData, envelopes: Iterable[bytes]
    ) -> Iterator[bytes]:
        """Open what ``seal_chunks`` made, chunk by chunk (``core.crypto.chunks.open_chunks``:
        act on the plaintext only once the iterator ends without error)."""
        scope = _scope_of(aad)

        def lookup(version: int) -> AESGCM:
            return self._dek(session, scope, version)

        return open_chunks(lookup, envelopes, aad=aad)

    def blind_index(
        self, session: Session, *, group_id: uuid.UUID, purpose: str, value: str
    ) -> bytes:
        """HMAC-SHA-256 blind index under the group's index key (``core.crypto.blind_index``).

        ``purpose`` "ins": ``value`` is ``"<system>|<INS>"``; "name-birthdate":
        ``"<family name>|<YYYY-MM-DD>"``. Normalised here; ``ValueError`` if malformed.
        """
        if purpose == "ins":
            system, separator, ins = value.partition("|")
            if not separator:
                raise ValueError("an INS blind index takes 'system|value'")
            return blind.ins_index(self._index_key(session, group_id), system=system, value=ins)
        if purpose == "name-birthdate":
            family, separator, date = value.rpartition("|")
            if not separator:
                raise ValueError("a name-birthdate blind index takes 'family|YYYY-MM-DD'")
            birth_date = dt.date.fromisoformat(date)
            return blind.name_birthdate_index(
                self._index_key(session, group_id), family_name=family, birth_date=birth_date
            )
        raise ValueError(f"unknown blind index purpose (one of {', '.join(PURPOSES)})")

    # -- shredding ---------------------------------------------------------------------------

    def shred_thread(
        self, session: Session, *, actor: Actor, thread_id: uuid.UUID, reason: str
    ) -> ShredResult:
        """Destroy every data key version of a thread and record it in the shred ledger.

        No audit entry here: ``hdsapp.keys.service.shred_thread`` is the audited use case;
        call this one from a use case that is audited already. Refuses (``LookupError``) a
        thread the key store has never seen; a thread already shredded is left as is
        (``already``).
        """
        previous = session.execute(
            sa.select(_SL).where(_SL.c.thread_id == thread_id).limit(1)
        ).first()
        if previous is not None:
            return ShredResult(
                thread_id, previous.group_id, 0, already=True, record=_record_of(previous)
            )
        groups = session.execute(
            sa.select(_DK.c.group_id).where(_DK.c.owner_id == thread_id).distinct()
        ).all()
        if not groups:
            raise LookupError(f"the key store has no key for thread {thread_id}")
        group_id = groups[0].group_id
        deleted = _rowcount(session.execute(sa.delete(_DK).where(_DK.c.owner_id == thread_id)))
        return ShredResult(
            thread_id,
            group_id,
            deleted,
            already=False,
            record=self._ledger(
                session,
                actor,
                group_id=group_id,
                thread_id=thread_id,
                reason=reason,
                key_versions=deleted,
            ),
        )

    def shred_group(
        self, session: Session, *, actor: Actor, group_id: uuid.UUID, reason: str
    ) -> ShredResult:
        """Destroy every key of a group (its KEKs, its own and its threads' data keys, its
        blind-index key) and record it in the shred ledger. Same rules as ``shred_thread``."""
        previous = session.execute(
            sa.select(_SL).where(_SL.c.group_id == group_id, _SL.c.thread_id.is_(None)).limit(1)
        ).first()
        if previous is not None:
            return ShredResult(None, group_id, 0, already=True, record=_record_of(previous))
        known = session.execute(
            sa.select(_GK.c.version).where(_GK.c.group_id == group_id).limit(1)
        ).first()
        if known is None:
            raise LookupError(f"the key store has no key for group {group_id}")
        deleted = delete_group_key_rows(session, group_id)
        return ShredResult(
            None,
            group_id,
            deleted,
            already=False,
            record=self._ledger(
                session,
                actor,
                group_id=group_id,
                thread_id=None,
                reason=reason,
                key_versions=deleted,
            ),
        )

    def forget(self, owner: uuid.UUID) -> None:
        """Drop from this process's caches every key of a thread or group (after shredding)."""
        self._ciphers.invalidate(owner)
        self._index_keys.invalidate(owner)

    def forget_all(self) -> None:
        self._ciphers.clear()
        self._index_keys.clear()

    def _ledger(
        self,
        session: Session,
        actor: Actor,
        *,
        group_id: uuid.UUID,
        thread_id: uuid.UUID | None,
        reason: str,
        key_versions: int,
    ) -> ShredRecord:
        reason = " ".join(reason.split())[:500]
        if not reason:
            raise ValueError("a shred needs a reason")
        record = ShredRecord(uuid.uuid4(), group_id, thread_id, utcnow())
        session.execute(
            sa.insert(_SL).values(
                id=record.id,
                group_id=group_id,
                thread_id=thread_id,
                shredded_at=record.shredded_at,
                actor_id=actor.user_id,
                actor_kind=actor.kind[:16],
                reason=reason,
                key_versions=key_versions,
            )
        )
        owner = thread_id or group_id
        self.forget(owner)
        _memo(session).clear()
        # Once committed: drop what another request of this process may have cached in the
        # meantime, and copy the entry to the ledger file outside the database.
        pending: list[tuple[Keyring, ShredRecord]] = session.info.setdefault(_PENDING, [])
        pending.append((self, record))
        return record

    def _after_commit(self, records: list[ShredRecord]) -> None:
        for record in records:
            self.forget(record.thread_id or record.group_id)
        if self.ledger_file is not None:
            try:
                self.ledger_file.append(records)
            except OSError as exc:
                # The database ledger holds it; start-up copies it to the file again.
                log.error("shred ledger file not written", extra={"error": type(exc).__name__})

    # -- operations for hdsapp.keys: rotation and destruction ---------------------------------

    def root(self, session: Session | None = None) -> RootProvider:
        """The root key provider, opened on first use (with ``auto_provision``, a first root
        version is created if the provider has none and the database holds no wrapped key)."""
        provider = self._provider
        if provider is None:
            with self._lock:
                if self._provider is None:
                    assert self.spec is not None
                    provision = (
                        self._auto_provision and session is not None and not _store_holds(session)
                    )
                    self._provider, created = self.spec.open(provision=provision)
                    if created:
                        log.warning(
                            "created the first root key version", extra={"provider": self.spec.kind}
                        )
                provider = self._provider
        return provider

    def current_root_version(self, session: Session | None = None) -> int:
        current = self.root(session).describe().get("current_version")
        if not isinstance(current, int):
            raise MissingKeyError("the root key provider holds no key version yet")
        return current

    def begin_kek_rotation(
        self, session: Session, *, group_id: uuid.UUID, target: int | None = None
    ) -> int:
        """Make a new KEK version of the group current (old ones retired, still unwrapping)
        and return it. Resumable: if data keys are still wrapped under an older version (a
        rotation interrupted), or the current version is already ``target``, no new version is
        made and the current one is returned."""
        active = session.execute(
            sa.select(_GK.c.version)
            .where(_GK.c.group_id == group_id, _GK.c.status == "active")
            .with_for_update()
        ).first()
        if active is None:
            raise LookupError(f"the key store has no KEK for group {group_id}")
        current = int(active.version)
        if target is not None and current >= target:
            return current
        if target is None and self.pending_rewraps(session, group_id=group_id, kek_version=current):
            return current
        new = current + 1
        kek = generate_data_key()
        wrapped = wrap_group_kek(self.root(session), kek, group_id=str(group_id), kek_version=new)
        now = utcnow()
        session.execute(
            sa.update(_GK)
            .where(_GK.c.group_id == group_id, _GK.c.status == "active")
            .values(status="retired", retired_at=now)
        )
        session.execute(
            sa.insert(_GK).values(
                group_id=group_id,
                version=new,
                wrapped=wrapped,
                root_version=self._record_root(session, key_version_of(wrapped)),
                status="active",
                created_at=now,
            )
        )
        self._ciphers.put(("kek", group_id, new), AESGCM(kek), owners=(group_id,))
        return new

    def pending_rewraps(self, session: Session, *, group_id: uuid.UUID, kek_version: int) -> int:
        """How many data keys of the group are wrapped under a KEK version older than
        ``kek_version``."""
        count = session.execute(
            sa.select(sa.func.count()).where(
                _DK.c.group_id == group_id, _DK.c.kek_version < kek_version
            )
        ).scalar_one()
        return int(count)

    def rewrap_data_keys(self, session: Session, *, group_id: uuid.UUID, limit: int) -> int:
        """Re-wrap up to ``limit`` of the group's data keys still under an older KEK version
        under the active one; returns how many. Content ciphertexts are not touched."""
        active = session.execute(
            sa.select(_GK.c.version).where(_GK.c.group_id == group_id, _GK.c.status == "active")
        ).scalar_one()
        rows = session.execute(
            sa.select(
                _DK.c.owner_id, _DK.c.version, _DK.c.thread_id, _DK.c.kek_version, _DK.c.wrapped
            )
            .where(_DK.c.group_id == group_id, _DK.c.kek_version < active)
            .order_by(_DK.c.owner_id, _DK.c.version)
            .limit(limit)
            .with_for_update()
        ).all()
        if not rows:
            return 0
        new_kek = self._kek(session, group_id, active)
        for row in rows:
            scope = _Scope(group_id, row.thread_id)
            dek = self._unwrap_dek_bytes(
                session,
                scope,
                _DekRow(row.version, group_id, row.thread_id, row.kek_version, row.wrapped),
            )
            session.execute(
                sa.update(_DK)
                .where(_DK.c.owner_id == row.owner_id, _DK.c.version == row.version)
                .values(
                    kek_version=active,
                    wrapped=_wrap_dek(new_kek, dek, scope, kek_version=active, version=row.version),
                )
            )
        _memo(session).clear()
        return len(rows)

    def destroy_retired_keks(self, session: Session, *, group_id: uuid.UUID) -> list[int]:
        """Destroy the group's retired KEK versions that no data key is wrapped under any more
        (their wrapped key is erased; the row stays, ``destroyed``); returns their numbers."""
        retired = session.execute(
            sa.select(_GK.c.version)
            .where(_GK.c.group_id == group_id, _GK.c.status == "retired")
            .with_for_update()
        ).all()
        destroyed = []
        for (version,) in retired:
            used = session.execute(
                sa.select(_DK.c.owner_id)
                .where(_DK.c.group_id == group_id, _DK.c.kek_version == version)
                .limit(1)
            ).first()
            if used is not None:
                continue
            session.execute(
                sa.update(_GK)
                .where(_GK.c.group_id == group_id, _GK.c.version == version)
                .values(status="destroyed", wrapped=None, root_version=None, destroyed_at=utcnow())
            )
            self._ciphers.discard(("kek", group_id, version))
            destroyed.append(int(version))
        return destroyed

    def begin_root_rotation(self, session: Session, *, target: int | None = None) -> int:
        """Make a new root version current in the provider and return it. Resumable like
        ``begin_kek_rotation``: no new version while wrapped keys remain under an older one,
        or when the provider is already at ``target``."""
        provider = self.root(session)
        current = self.current_root_version(session)
        if target is not None and current < target:
            current = self._refreshed_root_version(session, target)
        if (target is not None and current >= target) or (
            target is None and self.pending_root_rewraps(session, root_version=current)
        ):
            self._record_root(session, current)
            return current
        new = provider.rotate()
        self._record_root(session, new)
        return new

    def pending_root_rewraps(self, session: Session, *, root_version: int) -> int:
        count = 0
        for table in (_GK, _BK):
            count += session.execute(
                sa.select(sa.func.count()).where(table.c.root_version < root_version)
            ).scalar_one()
        return int(count)

    def rewrap_under_root(self, session: Session, *, root_version: int, limit: int) -> int:
        """Re-wrap up to ``limit`` KEKs and blind-index keys still under an older root version
        under ``root_version`` (the provider's current one); returns how many."""
        provider = self.root(session)
        done = 0
        rows = session.execute(
            sa.select(_GK.c.group_id, _GK.c.version, _GK.c.wrapped)
            .where(_GK.c.root_version < root_version)
            .order_by(_GK.c.group_id, _GK.c.version)
            .limit(limit)
            .with_for_update()
        ).all()
        for row in rows:
            wrapped = rewrap_group_kek(
                provider, row.wrapped, group_id=str(row.group_id), kek_version=row.version
            )
            wrapped = self._check_root_version(session, wrapped, root_version, row)
            session.execute(
                sa.update(_GK)
                .where(_GK.c.group_id == row.group_id, _GK.c.version == row.version)
                .values(wrapped=wrapped, root_version=root_version)
            )
            done += 1
        if done >= limit:
            return done
        index_rows = session.execute(
            sa.select(_BK.c.group_id, _BK.c.version, _BK.c.wrapped)
            .where(_BK.c.root_version < root_version)
            .order_by(_BK.c.group_id)
            .limit(limit - done)
            .with_for_update()
        ).all()
        for row in index_rows:
            aad = _index_aad(row.group_id, row.version)
            key = _checked_key(provider.unwrap(row.wrapped, aad=aad))
            wrapped = provider.wrap(key, aad=aad)
            if key_version_of(wrapped) != root_version:
                raise ProviderError(
                    f"the provider wraps under root version {key_version_of(wrapped)}, "
                    f"not {root_version}"
                )
            session.execute(
                sa.update(_BK)
                .where(_BK.c.group_id == row.group_id)
                .values(wrapped=wrapped, root_version=root_version)
            )
            done += 1
        return done

    def destroy_retired_roots(self, session: Session) -> list[int]:
        """Destroy, in the provider, the root versions older than the current one that wrap
        nothing any more; returns their numbers. What they wrapped in database backups (KEKs
        of every group, blind-index keys) can no longer be unwrapped."""
        provider = self.root(session)
        current = self.current_root_version(session)
        versions = _versions(provider)
        for version in versions:
            self._record_root(session, int(version))
        destroyed = []
        candidates = session.execute(
            sa.select(_RV.c.version)
            .where(_RV.c.version < current, _RV.c.status != "destroyed")
            .order_by(_RV.c.version)
            .with_for_update()
        ).all()
        for (version,) in candidates:
            if any(
                session.execute(
                    sa.select(table.c.group_id).where(table.c.root_version == version).limit(1)
                ).first()
                for table in (_GK, _BK)
            ):
                continue
            if version in versions:
                provider.destroy_version(int(version))
            session.execute(
                sa.update(_RV)
                .where(_RV.c.version == version)
                .values(status="destroyed", destroyed_at=utcnow())
            )
            destroyed.append(int(version))
        if destroyed:
            self._ciphers.clear()
        return destroyed

    # -- checks ------------------------------------------------------------------------------

    def unwrap_check(self, session: Session) -> Iterator[str]:
        """Try to unwrap every KEK, blind-index key and data key row; yield what fails (ids and
        versions only). For the start-up self-check."""
        provider = self.root(session)
        versions = _versions(provider)
        for row in session.execute(
            sa.select(_GK.c.group_id, _GK.c.version, _GK.c.wrapped, _GK.c.root_version).where(
                _GK.c.status != "destroyed"
            )
        ):
            if row.root_version not in versions:
                yield (
                    f"group {row.group_id}: KEK version {row.version} is wrapped by root key "
                    f"version {row.root_version}, which the provider does not have"
                )
                continue
            try:
                unwrap_group_kek(
                    provider, row.wrapped, group_id=str(row.group_id), kek_version=row.version
                )
            except CryptoError as exc:
                yield (
                    f"group {row.group_id}: KEK version {row.version} does not unwrap "
                    f"({type(exc).__name__}: {exc})"
                )
        for row in session.execute(
            sa.select(_BK.c.group_id, _BK.c.version, _BK.c.wrapped, _BK.c.root_version)
        ):
            if row.root_version not in versions:
                yield (
                    f"group {row.group_id}: blind-index key is wrapped by root key version "
                    f"{row.root_version}, which the provider does not have"
                )
                continue
            aad = _index_aad(row.group_id, row.version)
            try:
                _checked_key(provider.unwrap(row.wrapped, aad=aad))
            except CryptoError as exc:
                yield (
                    f"group {row.group_id}: blind-index key does not unwrap "
                    f"({type(exc).__name__}: {exc})"
                )
        for row in session.execute(
            sa.select(
                _DK.c.version, _DK.c.group_id, _DK.c.thread_id, _DK.c.kek_version, _DK.c.wrapped
            )
        ):
            dek = _DekRow(*row)
            scope = _Scope(dek.group_id, dek.thread_id)
            where = f"thread {dek.thread_id}" if dek.thread_id else f"group {dek.group_id}"
            try:
                self._unwrap_dek_bytes(session, scope, dek)
            except CryptoError as exc:
                yield (
                    f"{where}: data key version {dek.version} (under KEK version "
                    f"{dek.kek_version}) does not unwrap ({type(exc).__name__}: {exc})"
                )

    # -- internals ---------------------------------------------------------------------------

    def _take(self, session: Session, aad: AssociatedData) -> tuple[int, AESGCM]:
        """One counted seal of the current data key version of the record's owner: its
        version and cipher.

        Seals are counted in the database in blocks reserved in the caller's transaction: 1,
        then 2, 4 ... up to 64 for a transaction that keeps sealing (an attachment's chunks).
        What a transaction reserved and did not use stays counted (the count errs on the safe
        side); a transaction rolled back takes its reservation with it, and its envelopes."""
        memo = _memo(session)
        key = ("seal", aad.group_id, aad.thread_id)
        slot = memo.get(key)
        if slot is not None and slot[1] > 0:
            slot[1] -= 1
            return slot[0], slot[3]
        scope = _scope_of(aad)
        block = slot[2] if slot is not None else 1
        row, granted = self._reserve(session, scope, block)
        cipher = self._cipher(session, scope, row)
        memo[key] = [row.version, granted - 1, min(2 * block, _MAX_BLOCK), cipher]
        return row.version, cipher

    def _reserve(self, session: Session, scope: _Scope, n: int) -> tuple[_DekRow, int]:
        """Count up to ``n`` seals (at least one) on the owner's active data key version,
        moving to a new version when it is full; returns the row and how many were counted."""
        n = min(n, self.max_seals)
        for _ in range(_RESERVE_ATTEMPTS):
            found = _count_seals(session, scope, n, self.max_seals)
            if found is None and n > 1:
                n = 1  # near the cap: one more may still fit
                found = _count_seals(session, scope, n, self.max_seals)
            if found is not None:
                _memo(session)[(scope.owner, found.version)] = found
                return found, n
            latest = session.execute(
                sa.select(_DK.c.version, _DK.c.group_id, _DK.c.status, _DK.c.seal_count)
                .where(_DK.c.owner_id == scope.owner)
                .order_by(_DK.c.version.desc())
                .limit(1)
                .with_for_update()
            ).first()
            if latest is None:
                if self._shredded(session, scope.group_id, scope.thread_id):
                    raise KeyShredded(f"the keys of {_name(scope)} were shredded")
                created = self._new_dek(session, scope, version=1, seal_count=n)
            elif latest.group_id != scope.group_id:
                raise IntegrityError(f"{_name(scope)} is keyed in another group")
            elif latest.status == "active" and latest.seal_count + n > self.max_seals:
                session.execute(
                    sa.update(_DK)
                    .where(_DK.c.owner_id == scope.owner, _DK.c.version == latest.version)
                    .values(status="retired", retired_at=utcnow())
                )
                created = self._new_dek(session, scope, version=latest.version + 1, seal_count=n)
            else:
                continue  # another writer moved on meanwhile: count again
            if created is not None:
                return created, n
        raise CryptoError(f"could not reserve a data key of {_name(scope)} (contention)")

    def _seal_chunk(
        self,
        session: Session,
        aad: AssociatedData,
        index: int,
        data: bytes,
        *,
        last: bool,
    ) -> bytes:
        version, cipher = self._take(session, aad)
        return seal(cipher, data, key_version=version, aad=aad.for_chunk(index, last=last))

    def _new_dek(
        self, session: Session, scope: _Scope, *, version: int, seal_count: int
    ) -> _DekRow | None:
        """Insert a data key version (None if another writer inserted it first)."""
        kek_version, kek = self._active_kek(session, scope.group_id)
        dek = generate_data_key()
        wrapped = _wrap_dek(kek, dek, scope, kek_version=kek_version, version=version)
        if not _insert_ignore(
            session,
            _DK,
            owner_id=scope.owner,
            version=version,
            group_id=scope.group_id,
            thread_id=scope.thread_id,
            kek_version=kek_version,
            wrapped=wrapped,
            seal_count=seal_count,
            status="active",
            created_at=utcnow(),
        ):
            return None
        row = _DekRow(version, scope.group_id, scope.thread_id, kek_version, wrapped)
        _memo(session)[(scope.owner, version)] = row
        self._ciphers.put(
            ("dek", scope.owner, version), AESGCM(dek), owners=(scope.group_id, scope.owner)
        )
        return row

    def _active_kek(self, session: Session, group_id: uuid.UUID) -> tuple[int, AESGCM]:
        """The group's active KEK, share-locked so it cannot be retired or destroyed before
        the data key wrapped under it commits. Creates the group's keys on first use."""
        for _ in range(2):
            row = session.execute(
                sa.select(_GK.c.version)
                .where(_GK.c.group_id == group_id, _GK.c.status == "active")
                .with_for_update(read=True)
            ).first()
            if row is not None:
                return int(row.version), self._kek(session, group_id, int(row.version))
            self.create_group_keys(session, group_id=group_id)
        raise MissingKeyError(f"group {group_id} has no active KEK")

    def _kek(self, session: Session, group_id: uuid.UUID, version: int) -> AESGCM:
        def load() -> AESGCM:
            wrapped = session.execute(
                sa.select(_GK.c.wrapped).where(
                    _GK.c.group_id == group_id,
                    _GK.c.version == version,
                    _GK.c.status != "destroyed",
                )
            ).scalar_one_or_none()
            if wrapped is None:
                raise MissingKeyError(f"KEK version {version} of group {group_id} is not available")
            return AESGCM(
                unwrap_group_kek(
                    self.root(session), wrapped, group_id=str(group_id), kek_version=version
                )
            )

        return self._ciphers.get_or_load(("kek", group_id, version), load, owners=(group_id,))

    def _dek(self, session: Session, scope: _Scope, version: int) -> AESGCM:
        """The data key version for opening, after confirming its row in this transaction."""
        memo = _memo(session)
        row = memo.get((scope.owner, version))
        if row is None:
            found = _dek_row(session, scope.owner, version)
            if found is None:
                if self._shredded(session, scope.group_id, scope.thread_id):
                    raise KeyShredded(f"the keys of {_name(scope)} were shredded")
                raise MissingKeyError(
                    f"data key version {version} of {_name(scope)} is not available"
                )
            row = found
            memo[(scope.owner, version)] = row
        cipher = self._cipher(session, scope, row)
        memo[(str(scope.group_id), str(scope.thread_id) if scope.thread_id else None, version)] = (
            cipher
        )
        return cipher

    def _cipher(self, session: Session, scope: _Scope, row: _DekRow) -> AESGCM:
        if row.group_id != scope.group_id or row.thread_id != scope.thread_id:
            raise IntegrityError(f"data key of {_name(scope)} is keyed elsewhere")
        return self._ciphers.get_or_load(
            ("dek", scope.owner, row.version),
            lambda: AESGCM(self._unwrap_dek_bytes(session, scope, row)),
            owners=(scope.group_id, scope.owner),
        )

    def _unwrap_dek_bytes(self, session: Session, scope: _Scope, row: _DekRow) -> bytes:
        if key_version_of(row.wrapped) != row.kek_version:
            raise IntegrityError(f"data key version {row.version} of {_name(scope)} is corrupt")
        kek = self._kek(session, scope.group_id, row.kek_version)
        aad = _dek_aad(scope, kek_version=row.kek_version, version=row.version)
        return _checked_key(open_envelope(kek, row.wrapped, aad=aad))

    def _index_key(self, session: Session, group_id: uuid.UUID) -> bytes:
        memo = _memo(session)
        found = memo.get(("index", group_id))
        if found is None:
            found = session.execute(_SELECT_INDEX_KEY, {"group": group_id}).first()
            if found is None:
                self.create_group_keys(session, group_id=group_id)
                found = session.execute(_SELECT_INDEX_KEY, {"group": group_id}).one()
            memo[("index", group_id)] = found
        version, wrapped = int(found.version), bytes(found.wrapped)

        def load() -> bytes:
            return _checked_key(
                self.root(session).unwrap(wrapped, aad=_index_aad(group_id, version))
            )

        return self._index_keys.get_or_load(("index", group_id, version), load, owners=(group_id,))

    def _record_root(self, session: Session, version: int) -> int:
        """Make sure the root version has its bookkeeping row, locked until commit (so it
        cannot be destroyed before what it wraps commits), and that it is usable."""
        _insert_ignore(
            session,
            _RV,
            version=version,
            provider=self.spec.kind if self.spec else _provider_kind(self._provider),
            status="active",
            created_at=utcnow(),
        )
        status = session.execute(
            sa.select(_RV.c.status).where(_RV.c.version == version).with_for_update()
        ).scalar_one()
        if status == "destroyed":
            raise MissingKeyError(f"root key version {version} was destroyed")
        newest = sa.select(sa.func.max(_RV.c.version)).scalar_subquery()
        session.execute(
            sa.update(_RV)
            .where(_RV.c.status == "active", _RV.c.version < newest)
            .values(status="retired", retired_at=utcnow())
        )
        return version

    def _refreshed_root_version(self, session: Session, wanted: int) -> int:
        """The provider's current root version, after making it look again if it is behind
        ``wanted`` (a PKCS#11 provider learns of versions made by other processes when asked
        to unwrap under one; the probe below fails authentication by design)."""
        provider = self.root(session)
        probe = bytes([1]) + wanted.to_bytes(4, "big") + bytes(12 + 16)
        with contextlib.suppress(CryptoError):
            provider.unwrap(probe, aad=_index_aad(uuid.UUID(int=0), 0))
        return self.current_root_version(session)

    def _check_root_version(
        self, session: Session, wrapped: bytes, root_version: int, row: Any
    ) -> bytes:
        if key_version_of(wrapped) == root_version:
            return wrapped
        if self._refreshed_root_version(session, root_version) == root_version:
            wrapped = rewrap_group_kek(
                self.root(session), wrapped, group_id=str(row.group_id), kek_version=row.version
            )
            if key_version_of(wrapped) == root_version:
                return wrapped
        raise ProviderError(
            f"the provider wraps under root version {key_version_of(wrapped)}, not {root_version}"
        )

    def _latest_dek(self, session: Session, owner: uuid.UUID) -> Any:
        return session.execute(
            sa.select(_DK.c.version, _DK.c.group_id)
            .where(_DK.c.owner_id == owner)
            .order_by(_DK.c.version.desc())
            .limit(1)
        ).first()

    def _shredded(self, session: Session, group_id: uuid.UUID, thread_id: uuid.UUID | None) -> bool:
        condition = sa.and_(_SL.c.group_id == group_id, _SL.c.thread_id.is_(None))
        if thread_id is not None:
            condition = sa.or_(condition, _SL.c.thread_id == thread_id)
        return session.execute(sa.select(_SL.c.id).where(condition).limit(1)).first() is not None

    def close(self) -> None:
        close = getattr(self._provider, "close", None)
        if close is not None and self.spec is not None:
            close()
            self._provider = None


# -- helpers ---------------------------------------------------------------------------------

# The two statements of every seal and open run on the driver's connection of the caller's
# transaction (SQLAlchemy's execution path costs about ten times the statement itself here).
_MAX_BLOCK = 64
_COUNT_SQL = (
    "UPDATE data_key SET seal_count = seal_count + {p} WHERE owner_id = {p} AND group_id = {p}"
    " AND status = 'active' AND seal_count + {p} <= {p}"
    " RETURNING version, group_id, thread_id, kek_version, wrapped"
)
_ROW_SQL = (
    "SELECT version, group_id, thread_id, kek_version, wrapped FROM data_key"
    " WHERE owner_id = {p} AND version = {p}"
)
_PLACEHOLDERS = {"sqlite": "?", "postgresql": "%s"}


def _driver(session: Session) -> tuple[Any, bool]:
    """The DB-API connection in the session's transaction, and whether it is SQLite (where
    UUIDs are stored as 32 hex digits)."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    return driver, connection.dialect.name == "sqlite"


@functools.cache
def _sql(template: str, dialect: str) -> str:
    return template.format(p=_PLACEHOLDERS[dialect])


def _row(found: Any) -> _DekRow:
    version, group_id, thread_id, kek_version, wrapped = found
    return _DekRow(
        int(version),
        group_id if isinstance(group_id, uuid.UUID) else uuid.UUID(group_id),
        thread_id
        if thread_id is None or isinstance(thread_id, uuid.UUID)
        else uuid.UUID(thread_id),
        int(kek_version),
        bytes(wrapped),
    )


def _count_seals(session: Session, scope: _Scope, n: int, cap: int) -> _DekRow | None:
    driver, is_sqlite = _driver(session)
    owner, group = (
        (scope.owner.hex, scope.group_id.hex) if is_sqlite else (scope.owner, scope.group_id)
    )
    dialect = "sqlite" if is_sqlite else "postgresql"
    found = driver.execute(_sql(_COUNT_SQL, dialect), (n, owner, group, n, cap)).fetchone()
    return None if found is None else _row(found)


def _dek_row(session: Session, owner: uuid.UUID, version: int) -> _DekRow | None:
    driver, is_sqlite = _driver(session)
    dialect = "sqlite" if is_sqlite else "postgresql"
    key = owner.hex if is_sqlite else owner
    found = driver.execute(_sql(_ROW_SQL, dialect), (key, version)).fetchone()
    return None if found is None else _row(found)


_SELECT_INDEX_KEY = sa.select(_BK.c.version, _BK.c.wrapped, _BK.c.root_version).where(
    _BK.c.group_id == sa.bindparam("group")
)


def delete_group_key_rows(session: Session, group_id: uuid.UUID) -> int:
    """Delete every key row of a group; returns how many key versions went."""
    deleted = 0
    for table in (_DK, _GK, _BK):
        deleted += _rowcount(session.execute(sa.delete(table).where(table.c.group_id == group_id)))
    return deleted


def _versions(provider: KeyProvider) -> set[int]:
    versions = provider.describe().get("versions") or []
    assert isinstance(versions, list)
    return {int(v) for v in versions}


def _rowcount(result: Any) -> int:
    count: int = result.rowcount
    return count


def _record_of(row: Any) -> ShredRecord:
    return ShredRecord(row.id, row.group_id, row.thread_id, row.shredded_at)


def _provider_kind(provider: object) -> str:
    try:
        kind = provider.describe().get("kind", "unknown")  # type: ignore[attr-defined]
    except CryptoError:
        kind = "unknown"
    return str(kind)[:16]


def _store_holds(session: Session) -> bool:
    """Whether the database already holds a key wrapped by a root key."""
    for table in (_GK, _BK):
        if session.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
            return True
    return False


def _insert_ignore(session: Session, table: sa.Table, **values: Any) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True if the row was inserted."""
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    result = session.execute(module.insert(table).values(**values).on_conflict_do_nothing())
    return bool(_rowcount(result))


def _memo(session: Session) -> dict[Any, Any]:
    memo: dict[Any, Any] = session.info.setdefault(_MEMO, {})
    return memo


@event.listens_for(OrmSession, "after_transaction_end")
def _forget_confirmed(session: OrmSession, _transaction: SessionTransaction) -> None:
    # Rows confirmed in a transaction are confirmed for that transaction only (and a savepoint
    # rolled back may take rows with it): read them again in the next.
    session.info.pop(_MEMO, None)


@event.listens_for(OrmSession, "after_commit")
def _shreds_committed(session: OrmSession) -> None:
    pending: list[tuple[Keyring, ShredRecord]] = session.info.pop(_PENDING, [])
    by_keyring: dict[int, tuple[Keyring, list[ShredRecord]]] = {}
    for keyring, record in pending:
        by_keyring.setdefault(id(keyring), (keyring, []))[1].append(record)
    for keyring, records in by_keyring.values():
        keyring._after_commit(records)


@event.listens_for(OrmSession, "after_soft_rollback")
def _shreds_rolled_back(session: OrmSession, _previous: object) -> None:
    session.info.pop(_PENDING, None)


@functools.lru_cache(maxsize=8192)
def _parse_scope(group_id: str | None, thread_id: str | None) -> _Scope:
    if group_id is None:
        raise ValueError("aad.group_id picks the key: it is required")
    group = _uuid("group_id", group_id)
    return _Scope(group, None if thread_id is None else _uuid("thread_id", thread_id))


_KEY_STORE_KINDS = frozenset((RecordKind.WRAPPED_KEK, RecordKind.WRAPPED_DEK))


def _check_record(aad: AssociatedData) -> None:
    if aad.kind in _KEY_STORE_KINDS:
        raise ValueError("wrapped-key identities are the key store's own")
    if aad.kek_version is not None or aad.dek_version is not None:
        raise ValueError("leave the key versions out of aad: the envelope carries them")
    if aad.chunk_index is not None:
        raise ValueError("pass the record's identity, not a chunk's")


def _scope_of(aad: AssociatedData) -> _Scope:
    _check_record(aad)
    return _parse_scope(aad.group_id, aad.thread_id)


def _uuid(name: str, text: str) -> uuid.UUID:
    try:
        value = uuid.UUID(text)
    except ValueError:
        raise ValueError(f"aad.{name} must be a UUID") from None
    if str(value) != text:
        raise ValueError(f"aad.{name} must be a UUID in canonical form (str(uuid))")
    return value


def _name(scope: _Scope) -> str:
    return f"thread {scope.thread_id}" if scope.thread_id else f"group {scope.group_id}"


def _dek_aad(scope: _Scope, *, kek_version: int, version: int) -> AssociatedData:
    # The same identity as core.crypto.keys.dek_aad for a thread; thread_id None (encoded
    # apart from any string) for the group's own data key.
    return AssociatedData(
        RecordKind.WRAPPED_DEK,
        group_id=str(scope.group_id),
        thread_id=str(scope.thread_id) if scope.thread_id else None,
        kek_version=kek_version,
        dek_version=version,
    )


def _wrap_dek(kek: AESGCM, dek: bytes, scope: _Scope, *, kek_version: int, version: int) -> bytes:
    aad = _dek_aad(scope, kek_version=kek_version, version=version)
    return seal(kek, dek, key_version=kek_version, aad=aad)


def _index_aad(group_id: uuid.UUID, version: int) -> AssociatedData:
    # A wrapped KEK's identity has no record_id: this one can never pass for a KEK (or back).
    return AssociatedData(
        RecordKind.WRAPPED_KEK,
        group_id=str(group_id),
        record_id="blind-index-key",
        kek_version=version,
    )


def _checked_key(key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise IntegrityError("unwrapped key has the wrong length")
    return key


def _rechunk(pieces: Iterable[bytes], chunk_size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= chunk_size:
            yield bytes(buffer[:chunk_size])
            del buffer[:chunk_size]
    if buffer:
        yield bytes(buffer)


# -- one keyring per process -----------------------------------------------------------------

_keyrings: dict[tuple[Any, ...], Keyring] = {}
_keyrings_pid = os.getpid()
_keyrings_lock = threading.Lock()
_MAX_KEYRINGS = 32


def keyring_for(settings: Settings) -> Keyring:
    """The process's keyring for these settings (a PKCS#11 token allows one login per process,
    and a forked worker must open its own)."""
    global _keyrings_pid  # noqa: PLW0603 - reset in a forked child
    key = (
        ProviderSpec.from_settings(settings),
        settings.dek_max_seals,
        settings.key_cache_seconds,
        settings.key_cache_entries,
        settings.shred_ledger_path,
        settings.env,
    )
    with _keyrings_lock:
        if _keyrings_pid != os.getpid():
            _keyrings.clear()  # inherited from the parent: its token sessions are not ours
            _keyrings_pid = os.getpid()
        keyring = _keyrings.get(key)
        if keyring is None:
            if len(_keyrings) >= _MAX_KEYRINGS:
                _keyrings.pop(next(iter(_keyrings)))
            keyring = _keyrings[key] = Keyring.from_settings(settings)
        return keyring


__all__ = [
    "PURPOSES",
    "KeyShredded",
    "Keyring",
    "ProviderSpec",
    "RootProvider",
    "ShredLedgerFile",
    "ShredRecord",
    "ShredResult",
    "ensure_root_key",
    "keyring_for",
]
