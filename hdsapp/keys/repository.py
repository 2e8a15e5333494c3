"""Queries of the key operations: status, the shred ledger, stored envelopes' key versions."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from hdsapp.core.crypto.keyring import ShredRecord
from hdsapp.models import SQLModel

_DK: sa.Table = SQLModel.metadata.tables["data_key"]
_GK: sa.Table = SQLModel.metadata.tables["group_key"]
_BK: sa.Table = SQLModel.metadata.tables["blind_index_key"]
_RV: sa.Table = SQLModel.metadata.tables["key_root_version"]
_SL: sa.Table = SQLModel.metadata.tables["shred_ledger"]


@dataclass(frozen=True)
class SealedColumn:
    """A column of envelopes sealed through the keyring: ``owner_column`` holds the id of the
    data key's owner (the thread id, or the group id for a group's own records). The start-up
    self-check reads the key version of every envelope stored there (5 header bytes) and
    refuses to serve if a version is missing. Add a line to ``SEALED_COLUMNS`` for each."""

    table: str
    column: str
    owner_column: str


SEALED_COLUMNS: list[SealedColumn] = [
    SealedColumn("patient", "identity", "group_id"),
    SealedColumn("thread", "title", "id"),
    SealedColumn("message", "body", "thread_id"),
    SealedColumn("attachment", "filename", "thread_id"),
]


def has_key_tables(session: Session) -> bool:
    inspector = sa.inspect(session.connection())
    return all(inspector.has_table(t.name) for t in (_DK, _GK, _BK, _RV, _SL))


def existing_tables(session: Session, names: Iterable[str]) -> set[str]:
    inspector = sa.inspect(session.connection())
    return {name for name in names if inspector.has_table(name)}


def group_ids(session: Session) -> list[uuid.UUID]:
    rows = session.execute(
        sa.select(_GK.c.group_id).where(_GK.c.status == "active").order_by(_GK.c.group_id)
    )
    return [row.group_id for row in rows]


def group_has_keys(session: Session, group_id: uuid.UUID) -> bool:
    return (
        session.execute(sa.select(_GK.c.version).where(_GK.c.group_id == group_id).limit(1)).first()
        is not None
    )


def thread_group(session: Session, thread_id: uuid.UUID) -> uuid.UUID | None:
    row = session.execute(
        sa.select(_DK.c.group_id).where(_DK.c.owner_id == thread_id).limit(1)
    ).first()
    return None if row is None else row.group_id


def active_kek_version(session: Session, group_id: uuid.UUID) -> int | None:
    row = session.execute(
        sa.select(_GK.c.version).where(_GK.c.group_id == group_id, _GK.c.status == "active")
    ).first()
    return None if row is None else int(row.version)


# -- the shred ledger --------------------------------------------------------------------------


def ledger(session: Session) -> list[ShredRecord]:
    rows = session.execute(
        sa.select(_SL.c.id, _SL.c.group_id, _SL.c.thread_id, _SL.c.shredded_at).order_by(
            _SL.c.shredded_at, _SL.c.id
        )
    )
    return [ShredRecord(r.id, r.group_id, r.thread_id, r.shredded_at) for r in rows]


def shred_entry(session: Session, thread_id: uuid.UUID) -> Any:
    return session.execute(
        sa.select(_SL).where(_SL.c.thread_id == thread_id).order_by(_SL.c.shredded_at).limit(1)
    ).first()


def add_restored_ledger_entry(session: Session, record: ShredRecord) -> None:
    """A ledger entry known from the file copy only (the database was restored from an older
    backup): written back with its original id and time."""
    session.execute(
        sa.insert(_SL).values(
            id=record.id,
            group_id=record.group_id,
            thread_id=record.thread_id,
            shredded_at=record.shredded_at,
            actor_id=None,
            actor_kind="restore",
            reason="re-applied from the shred ledger file after a database restore",
            key_versions=0,
        )
    )


def delete_shredded_keys(session: Session) -> int:
    """Delete every key row of a thread or group named in the ledger; returns how many."""
    threads = sa.select(_SL.c.thread_id).where(_SL.c.thread_id.is_not(None))
    groups = sa.select(_SL.c.group_id).where(_SL.c.thread_id.is_(None))
    deleted = _rowcount(session.execute(sa.delete(_DK).where(_DK.c.owner_id.in_(threads))))
    for table in (_DK, _GK, _BK):
        deleted += _rowcount(session.execute(sa.delete(table).where(table.c.group_id.in_(groups))))
    return deleted


def _rowcount(result: Any) -> int:
    count: int = result.rowcount
    return count


# -- what stored data needs ----------------------------------------------------------------------


def envelope_key_versions(
    session: Session, sealed: SealedColumn
) -> Iterator[tuple[uuid.UUID, int]]:
    """Distinct (owner, data key version) of the envelopes stored in a column."""
    owner = sa.column(sealed.owner_column, sa.Uuid())
    envelope = sa.column(sealed.column, sa.LargeBinary())
    header = sa.func.substr(envelope, 2, 4, type_=sa.LargeBinary())
    statement = (
        sa.select(owner, header)
        .select_from(sa.table(sealed.table))
        .where(envelope.is_not(None))
        .distinct()
    )
    for owner_id, version in session.execute(statement):
        if version is not None and len(version) == 4:
            yield owner_id, int.from_bytes(bytes(version), "big")


def data_key_versions(session: Session) -> set[tuple[uuid.UUID, int]]:
    return {
        (r.owner_id, int(r.version))
        for r in session.execute(sa.select(_DK.c.owner_id, _DK.c.version))
    }


def shredded_owners(session: Session) -> set[uuid.UUID]:
    owners = set()
    for row in session.execute(sa.select(_SL.c.group_id, _SL.c.thread_id)):
        owners.add(row.thread_id or row.group_id)
    return owners


def shredded_groups(session: Session) -> set[uuid.UUID]:
    return {
        r.group_id
        for r in session.execute(sa.select(_SL.c.group_id).where(_SL.c.thread_id.is_(None)))
    }


def data_key_groups(session: Session) -> dict[uuid.UUID, uuid.UUID]:
    """owner -> group of every data key."""
    return {
        r.owner_id: r.group_id
        for r in session.execute(sa.select(_DK.c.owner_id, _DK.c.group_id).distinct())
    }


# -- status ------------------------------------------------------------------------------------


def root_versions(session: Session) -> list[dict[str, Any]]:
    wraps: dict[int, int] = {}
    for table in (_GK, _BK):
        for version, count in session.execute(
            sa.select(table.c.root_version, sa.func.count())
            .where(table.c.root_version.is_not(None))
            .group_by(table.c.root_version)
        ):
            wraps[int(version)] = wraps.get(int(version), 0) + int(count)
    return [
        {
            "version": int(r.version),
            "provider": r.provider,
            "status": r.status,
            "created_at": _iso(r.created_at),
            "destroyed_at": _iso(r.destroyed_at),
            "wraps": wraps.get(int(r.version), 0),
        }
        for r in session.execute(sa.select(_RV).order_by(_RV.c.version))
    ]


def group_status(session: Session, *, cap: int) -> list[dict[str, Any]]:
    groups: dict[uuid.UUID, dict[str, Any]] = {}
    for r in session.execute(sa.select(_GK).order_by(_GK.c.group_id, _GK.c.version)):
        group = groups.setdefault(
            r.group_id,
            {"group_id": str(r.group_id), "kek_versions": [], "last_rotation": None},
        )
        group["kek_versions"].append(
            {
                "version": int(r.version),
                "status": r.status,
                "root_version": r.root_version,
                "created_at": _iso(r.created_at),
            }
        )
        if r.version > 1:
            group["last_rotation"] = _iso(r.created_at)
    active = {
        g: max(v["version"] for v in d["kek_versions"] if v["status"] == "active")
        for g, d in groups.items()
        if any(v["status"] == "active" for v in d["kek_versions"])
    }
    statement = sa.select(
        _DK.c.group_id,
        sa.func.count().label("versions"),
        sa.func.count(sa.distinct(_DK.c.owner_id)).label("owners"),
        sa.func.sum(sa.case((_DK.c.status == "active", 1), else_=0)).label("active"),
        sa.func.sum(_DK.c.seal_count).label("seals"),
        sa.func.max(_DK.c.seal_count).label("max_seals"),
    ).group_by(_DK.c.group_id)
    for r in session.execute(statement):
        group = groups.setdefault(
            r.group_id, {"group_id": str(r.group_id), "kek_versions": [], "last_rotation": None}
        )
        pending = 0
        if r.group_id in active:
            pending = int(
                session.execute(
                    sa.select(sa.func.count()).where(
                        _DK.c.group_id == r.group_id, _DK.c.kek_version < active[r.group_id]
                    )
                ).scalar_one()
            )
        group["data_keys"] = {
            "versions": int(r.versions),
            "owners": int(r.owners),
            "active": int(r.active or 0),
            "retired": int(r.versions) - int(r.active or 0),
            "seals": int(r.seals or 0),
            "max_usage": round(int(r.max_seals or 0) / cap, 6),
            "pending_rewrap": pending,
        }
    return list(groups.values())


def ledger_summary(session: Session) -> dict[str, Any]:
    count, last = session.execute(sa.select(sa.func.count(), sa.func.max(_SL.c.shredded_at))).one()
    return {"entries": int(count), "last": _iso(last)}


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat()
