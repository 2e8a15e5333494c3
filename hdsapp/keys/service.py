"""Key operations on top of the keyring (hdsapp.core.crypto.keyring): rotation, destruction of
old versions, crypto-shredding, re-applying the shred ledger, the start-up self-check, status.

Rotation never touches content: it re-wraps keys. A KEK rotation makes a new KEK version of a
group current, then re-wraps the group's data keys under it in batches, each batch its own unit
of work; a root rotation makes a new root version current in the provider and re-wraps every
KEK and blind-index key. Each row records which version wraps it, so a crash loses at most the
batch in flight and a rerun (same command, or the same Celery task redelivered) continues where
it stopped instead of starting another rotation. ``destroy_old`` then erases the KEK versions,
or deletes in the provider the root versions, that no longer wrap anything.

Shredding deletes a thread's data keys (or every key of a group) and appends to the shred ledger,
kept in the database (append-only) and copied to a file outside it; ``reapply_shreds`` (run at
every start-up) deletes again any key row the ledger names, e.g. after a database restore.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from hdsapp.core.accesslog import Access, audited, record
from hdsapp.core.actor import Actor
from hdsapp.core.crypto.errors import CryptoError
from hdsapp.core.crypto.keyring import Keyring, ShredResult
from hdsapp.core.db import Database
from hdsapp.core.errors import NotFound
from hdsapp.keys import repository
from hdsapp.keys.repository import SEALED_COLUMNS, SealedColumn

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500
BatchHook = Callable[[int], None]
"""Called after each committed batch with the number of rows re-wrapped so far (tests use it to
crash a rotation half-way)."""


@dataclass
class RotationReport:
    scope: str  # "group" or "root"
    group_id: uuid.UUID | None
    version: int
    rewrapped: int = 0
    destroyed: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "group_id": str(self.group_id) if self.group_id else None,
            "version": self.version,
            "rewrapped": self.rewrapped,
            "destroyed": self.destroyed,
        }


# -- rotation ----------------------------------------------------------------------------------


def rotate_group(
    *,
    database: Database,
    keyring: Keyring,
    actor: Actor,
    group_id: uuid.UUID,
    target: int | None = None,
    destroy_old: bool = False,
    batch: int = DEFAULT_BATCH,
    after_batch: BatchHook | None = None,
) -> RotationReport:
    """Rotate a group's KEK (resuming an interrupted rotation; with ``target``, only up to that
    version, so a redelivered task does not rotate twice); re-wrap its data keys in batches;
    optionally destroy the versions no data key uses any more."""
    with database.unit_of_work() as session:
        if not repository.group_has_keys(session, group_id):
            raise NotFound(f"The key store has no key for group {group_id}.", code="unknown-group")
        version = keyring.begin_kek_rotation(session, group_id=group_id, target=target)
        record(
            session,
            actor,
            Access(
                kind="key-rotation",
                action="U",
                group_id=group_id,
                resource_type="Group",
                resource_id=str(group_id),
                outcome_desc=f"kek-version:{version}",
            ),
        )
    report = RotationReport("group", group_id, version)
    _in_batches(
        database,
        lambda session: keyring.rewrap_data_keys(session, group_id=group_id, limit=batch),
        report=report,
        batch=batch,
        after_batch=after_batch,
    )
    if destroy_old:
        report.destroyed = destroy_old_group_keys(
            database=database, keyring=keyring, actor=actor, group_id=group_id
        )
    log.info(
        "group KEK rotated",
        extra={"group_id": str(group_id), "kek_version": version, "rewrapped": report.rewrapped},
    )
    return report


def destroy_old_group_keys(
    *, database: Database, keyring: Keyring, actor: Actor, group_id: uuid.UUID
) -> list[int]:
    with database.unit_of_work() as session:
        destroyed = keyring.destroy_retired_keks(session, group_id=group_id)
        if destroyed:
            record(
                session,
                actor,
                Access(
                    kind="key-destruction",
                    action="D",
                    group_id=group_id,
                    resource_type="Group",
                    resource_id=str(group_id),
                    outcome_desc="kek-versions:" + ",".join(map(str, destroyed)),
                ),
            )
    return destroyed


def rotate_all_groups(
    *,
    database: Database,
    keyring: Keyring,
    actor: Actor,
    destroy_old: bool = False,
    batch: int = DEFAULT_BATCH,
) -> list[RotationReport]:
    with database.unit_of_work() as session:
        groups = repository.group_ids(session)
    return [
        rotate_group(
            database=database,
            keyring=keyring,
            actor=actor,
            group_id=group_id,
            destroy_old=destroy_old,
            batch=batch,
        )
        for group_id in groups
    ]


def rotate_root(
    *,
    database: Database,
    keyring: Keyring,
    actor: Actor,
    target: int | None = None,
    destroy_old: bool = False,
    batch: int = DEFAULT_BATCH,
    after_batch: BatchHook | None = None,
) -> RotationReport:
    """Rotate the root key (a new version in the key file or the token), re-wrap every KEK and
    blind-index key under it in batches, optionally destroy the old versions in the provider."""
    with database.unit_of_work() as session:
        version = keyring.begin_root_rotation(session, target=target)
        record(
            session,
            actor,
            Access(
                kind="key-rotation",
                action="U",
                outcome_desc=f"root-version:{version}",
            ),
        )
    report = RotationReport("root", None, version)
    _in_batches(
        database,
        lambda session: keyring.rewrap_under_root(session, root_version=version, limit=batch),
        report=report,
        batch=batch,
        after_batch=after_batch,
    )
    if destroy_old:
        report.destroyed = destroy_old_root_keys(database=database, keyring=keyring, actor=actor)
    log.info("root key rotated", extra={"root_version": version, "rewrapped": report.rewrapped})
    return report


def destroy_old_root_keys(*, database: Database, keyring: Keyring, actor: Actor) -> list[int]:
    with database.unit_of_work() as session:
        destroyed = keyring.destroy_retired_roots(session)
        if destroyed:
            record(
                session,
                actor,
                Access(
                    kind="key-destruction",
                    action="D",
                    outcome_desc="root-versions:" + ",".join(map(str, destroyed)),
                ),
            )
    return destroyed


# -- shredding ---------------------------------------------------------------------------------


def shred_thread(
    session: Session,
    *,
    actor: Actor,
    thread_id: uuid.UUID,
    reason: str,
    keyring: Keyring,
    database: Database,
) -> ShredResult:
    """Crypto-shred a thread: destroy every data key version of it, record it in the shred
    ledger, audit it (kind "shred", action D) in the same transaction. Authorization is the
    caller's (an operator command, or a use case that checked the policy). ``NotFound`` for a
    thread the key store never keyed; a thread already shredded is reported, not shredded
    twice. A use case already inside ``audited`` calls ``keyring.shred_thread`` instead."""
    access = Access(kind="shred", action="D", resource_type="Thread", resource_id=str(thread_id))
    with audited(session, database, actor, access) as scope:
        try:
            result = keyring.shred_thread(session, actor=actor, thread_id=thread_id, reason=reason)
        except LookupError:
            raise NotFound(
                f"The key store has no key for thread {thread_id}: nothing to shred.",
                code="unknown-thread",
            ) from None
        scope.group_id = result.group_id
        scope.outcome_desc = "already-shredded" if result.already else None
        return result


def shred_group(
    session: Session,
    *,
    actor: Actor,
    group_id: uuid.UUID,
    reason: str,
    keyring: Keyring,
    database: Database,
) -> ShredResult:
    """Crypto-shred every key of a care group (same rules as ``shred_thread``)."""
    access = Access(
        kind="shred",
        action="D",
        group_id=group_id,
        resource_type="Group",
        resource_id=str(group_id),
    )
    with audited(session, database, actor, access) as scope:
        try:
            result = keyring.shred_group(session, actor=actor, group_id=group_id, reason=reason)
        except LookupError:
            raise NotFound(
                f"The key store has no key for group {group_id}: nothing to shred.",
                code="unknown-group",
            ) from None
        scope.outcome_desc = "already-shredded" if result.already else None
        return result


@dataclass
class ReapplyReport:
    ledger_entries: int
    restored_entries: int
    copied_to_file: int
    deleted_keys: int

    def as_dict(self) -> dict[str, int]:
        return {
            "ledger_entries": self.ledger_entries,
            "restored_entries": self.restored_entries,
            "copied_to_file": self.copied_to_file,
            "deleted_keys": self.deleted_keys,
        }


def reapply_shreds(*, database: Database, keyring: Keyring) -> ReapplyReport:
    """Delete again every key row the shred ledger names. Entries found only in the ledger
    file (the database was restored from a backup older than them) go back into the database;
    entries found only in the database are copied to the file."""
    ledger_file = keyring.ledger_file
    from_file = ledger_file.read() if ledger_file is not None else []
    with database.unit_of_work() as session:
        in_database = repository.ledger(session)
        known = {entry.id for entry in in_database}
        restored = []
        for entry in from_file:
            if entry.id not in known:
                repository.add_restored_ledger_entry(session, entry)
                known.add(entry.id)
                restored.append(entry)
        deleted = repository.delete_shredded_keys(session)
    in_file = {entry.id for entry in from_file}
    missing = [entry for entry in in_database if entry.id not in in_file]
    if ledger_file is not None and missing:
        ledger_file.append(missing)
    for entry in [*in_database, *restored]:
        keyring.forget(entry.thread_id or entry.group_id)
    if deleted or restored:
        log.warning(
            "shred ledger re-applied: keys of shredded threads or groups deleted again",
            extra={"deleted_keys": deleted, "restored_entries": len(restored)},
        )
    return ReapplyReport(
        ledger_entries=len(known),
        restored_entries=len(restored),
        copied_to_file=len(missing) if ledger_file is not None else 0,
        deleted_keys=deleted,
    )


# -- checks ------------------------------------------------------------------------------------


def self_check(
    *,
    database: Database,
    keyring: Keyring,
    require_root: bool,
    sealed_columns: list[SealedColumn] | None = None,
) -> list[str]:
    """What makes stored data unreadable: a key version referenced by stored envelopes that is
    missing (not shredded), a wrapped key that does not unwrap, a root version the provider
    lacks. Empty when all is well. ``require_root``: the provider must hold a root key even
    if nothing is stored yet (production: made by ``hdsapp init``)."""
    problems: list[str] = []
    with database.unit_of_work() as session:
        if not repository.has_key_tables(session):
            return []  # migrations pending: the schema check says so
        try:
            holds = bool(repository.root_versions(session)) or bool(repository.group_ids(session))
            if holds or require_root:
                keyring.current_root_version(session)
            if holds:
                problems.extend(keyring.unwrap_check(session))
        except CryptoError as exc:
            problems.append(f"root key provider: {exc}")
        problems.extend(_missing_versions(session, sealed_columns or SEALED_COLUMNS))
    return problems


def _missing_versions(session: Session, sealed_columns: list[SealedColumn]) -> list[str]:
    present = repository.data_key_versions(session)
    shredded = repository.shredded_owners(session)
    shredded_groups = repository.shredded_groups(session)
    groups = repository.data_key_groups(session)
    problems = []
    tables = repository.existing_tables(session, {c.table for c in sealed_columns})
    for sealed in sealed_columns:
        if sealed.table not in tables:
            continue
        for owner, version in repository.envelope_key_versions(session, sealed):
            if (owner, version) in present or owner in shredded:
                continue
            if groups.get(owner) in shredded_groups:
                continue
            problems.append(
                f"{sealed.table}.{sealed.column}: data key version {version} of {owner} is missing"
            )
    return problems


# Databases whose start-up check passed in this process (by URL).
_checked: set[str] = set()


def startup(*, database: Database, keyring: Keyring, require_root: bool) -> list[str]:
    """At start-up: re-apply the shred ledger, then the self-check. Returns the problems.

    With the database unreachable or not migrated yet, nothing can be checked: the check is
    deferred to ``readiness`` (which reports the database or schema first)."""
    try:
        with database.unit_of_work() as session:
            if not repository.has_key_tables(session):
                return []
        reapply_shreds(database=database, keyring=keyring)
        problems = self_check(database=database, keyring=keyring, require_root=require_root)
    except SQLAlchemyError as exc:
        log.warning("key store self-check deferred", extra={"error": type(exc).__name__})
        return []
    if not problems:
        _checked.add(database.url)
    return problems


def readiness(*, database: Database, keyring: Keyring, require_root: bool = False) -> str | None:
    """For /readyz and ``hdsapp check``: None if the key store is usable, else why not. Runs
    the start-up check if it has not passed in this process yet, else only asks the
    provider."""
    try:
        if database.url not in _checked:
            problems = startup(database=database, keyring=keyring, require_root=require_root)
            if problems:
                return "key store self-check failed: " + "; ".join(problems)
            if database.url in _checked:
                return None
        with database.unit_of_work() as session:
            if not repository.has_key_tables(session):
                return None
            if repository.root_versions(session) or keyring.spec is None:
                keyring.current_root_version(session)
    except CryptoError as exc:
        log.warning("readiness: key provider", extra={"error": type(exc).__name__})
        return "key provider unavailable"
    except SQLAlchemyError:
        return "database unreachable"
    return None


def status(*, database: Database, keyring: Keyring) -> dict[str, Any]:
    with database.unit_of_work() as session:
        groups = repository.group_status(session, cap=keyring.max_seals)
        roots = repository.root_versions(session)
        shreds = repository.ledger_summary(session)
        try:
            provider: dict[str, Any] = dict(keyring.root(session).describe())
        except CryptoError as exc:
            spec = keyring.spec.describe() if keyring.spec else {}
            provider = {**spec, "error": str(exc)}
    rotations = [g["last_rotation"] for g in groups if g["last_rotation"]]
    rotations += [r["created_at"] for r in roots if r["version"] > 1]
    totals = {
        "versions": sum(g.get("data_keys", {}).get("versions", 0) for g in groups),
        "seals": sum(g.get("data_keys", {}).get("seals", 0) for g in groups),
        "pending_rewrap": sum(g.get("data_keys", {}).get("pending_rewrap", 0) for g in groups),
        "max_usage": max((g.get("data_keys", {}).get("max_usage", 0) for g in groups), default=0),
        "cap": keyring.max_seals,
    }
    return {
        "provider": provider,
        "root_versions": roots,
        "groups": groups,
        "data_keys": totals,
        "shreds": shreds,
        "last_rotation": max(rotations, default=None),
    }


def _in_batches(
    database: Database,
    rewrap: Callable[[Session], int],
    *,
    report: RotationReport,
    batch: int,
    after_batch: BatchHook | None,
) -> None:
    """Re-wrap in committed batches until one comes back short: a crash loses one batch at
    most, and a rerun resumes where the committed ones stopped."""
    while True:
        with database.unit_of_work() as session:
            done = rewrap(session)
        report.rewrapped += done
        if done and after_batch is not None:
            after_batch(report.rewrapped)
        if done < batch:
            return
