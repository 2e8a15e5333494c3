"""Every query of the audit log: the stored tree, entries, checkpoints.

The log is not access-controlled row by row like clinical data: every read here is on
behalf of an auditor of one group (entries filtered by ``group_id``), of the checkpoint
signer, or of the verifier; the service decides which.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, col, select

from audit.compact_range import CompactRange
from audit.merkle import HASH_SIZE, node_hash
from hdsapp.auditing.schemas import EntryFilter
from hdsapp.core.db import SQLITE_BUSY_TIMEOUT_MS, is_sqlite, make_engine
from hdsapp.models.audit_checkpoint import AuditCheckpoint
from hdsapp.models.audit_entry import AuditEntry
from hdsapp.models.audit_head import HEAD_ID, AuditHead
from hdsapp.models.audit_node import AuditNode
from hdsapp.models.audit_pending import AuditPending

# Large enough to amortise round trips, small enough for any driver's parameter limit.
_IN_CHUNK = 400
Node = tuple[int, int]  # (level, index): leaves [index << level, (index + 1) << level)


class MissingHashError(LookupError):
    """The stored tree lacks a hash it should have: the log was damaged."""


def perfect_nodes(start: int, end: int) -> list[Node]:
    """The aligned perfect subtrees that make up leaves [start, end), left to right."""
    nodes = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length()
        while 1 << level > end - start:
            level -= 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


class StoredHashSource:
    """An ``audit.merkle.HashSource`` over the stored tree: level 0 from ``audit_entry``,
    higher levels from ``audit_node``. ``preload`` fetches what a set of ranges needs in a
    few queries, so a proof costs O(log n) rows and two round trips."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cache: dict[Node, bytes] = {}

    def preload(self, ranges: Iterable[tuple[int, int]]) -> None:
        wanted = {n for a, b in ranges for n in perfect_nodes(a, b)} - self.cache.keys()
        leaves = sorted(i for level, i in wanted if level == 0)
        inner = sorted(n for n in wanted if n[0] > 0)
        for k in range(0, len(leaves), _IN_CHUNK):
            rows = self.session.execute(
                sa.select(col(AuditEntry.position), col(AuditEntry.leaf_hash)).where(
                    col(AuditEntry.position).in_(leaves[k : k + _IN_CHUNK])
                )
            )
            self.cache.update(((0, p), h) for p, h in rows)
        for k in range(0, len(inner), _IN_CHUNK):
            rows = self.session.execute(
                sa.select(col(AuditNode.level), col(AuditNode.index), col(AuditNode.hash)).where(
                    sa.tuple_(col(AuditNode.level), col(AuditNode.index)).in_(
                        inner[k : k + _IN_CHUNK]
                    )
                )
            )
            self.cache.update(((lv, i), h) for lv, i, h in rows)

    def node(self, node: Node) -> bytes:
        if node not in self.cache:
            width = 1 << node[0]
            self.preload([(node[1] * width, (node[1] + 1) * width)])
        found = self.cache.get(node)
        if found is None or len(found) != HASH_SIZE:
            level, index = node
            raise MissingHashError(f"the stored tree has no hash for level {level} index {index}")
        return found

    def subtree_hash(self, start: int, end: int) -> bytes:
        nodes = perfect_nodes(start, end)
        if any(n not in self.cache for n in nodes):
            self.preload([(start, end)])
        result = self.node(nodes[-1])
        for n in reversed(nodes[:-1]):
            result = node_hash(self.node(n), result)
        return result


class RangeRecorder:
    """A HashSource that only notes which ranges a proof asks for (for ``preload``)."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def subtree_hash(self, start: int, end: int) -> bytes:
        self.ranges.append((start, end))
        return bytes(HASH_SIZE)


# -- head and checkpoints -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    size: int
    compact: CompactRange


def head(session: Session) -> Head:
    row = session.execute(
        sa.select(col(AuditHead.tree_size), col(AuditHead.compact)).where(
            col(AuditHead.id) == HEAD_ID
        )
    ).one()
    return Head(int(row.tree_size), CompactRange.decode(row.compact))


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    statement = select(AuditCheckpoint).order_by(col(AuditCheckpoint.tree_size).desc()).limit(1)
    return session.exec(statement).first()


def covering_checkpoint(session: Session, size: int) -> AuditCheckpoint | None:
    """The smallest checkpoint at or past ``size``."""
    statement = (
        select(AuditCheckpoint)
        .where(col(AuditCheckpoint.tree_size) >= size)
        .order_by(col(AuditCheckpoint.tree_size))
        .limit(1)
    )
    return session.exec(statement).first()


def checkpoints(session: Session) -> Sequence[AuditCheckpoint]:
    return session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.tree_size))).all()


def add_checkpoint(session: Session, checkpoint: AuditCheckpoint) -> bool:
    """Insert unless a checkpoint of that size exists (another signer was first)."""
    try:
        with session.begin_nested():
            session.add(checkpoint)
    except IntegrityError:
        return False
    return True


def count_entries(session: Session) -> int:
    return int(session.execute(sa.select(sa.func.count()).select_from(AuditEntry)).scalar_one())


def count_pending(session: Session) -> int:
    return int(session.execute(sa.select(sa.func.count()).select_from(AuditPending)).scalar_one())


def count_nodes(session: Session) -> int:
    return int(session.execute(sa.select(sa.func.count()).select_from(AuditNode)).scalar_one())


def nodes_in(session: Session, level: int, first: int, last: int) -> dict[int, bytes]:
    rows = session.execute(
        sa.select(col(AuditNode.index), col(AuditNode.hash)).where(
            col(AuditNode.level) == level,
            col(AuditNode.index) >= first,
            col(AuditNode.index) <= last,
        )
    )
    return {int(i): h for i, h in rows}


# -- entries -----------------------------------------------------------------------------------


_ENTRIES: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
EntryRow = sa.Row[Any]


def iter_entries(
    session: Session, start: int, end: int | None = None, *, batch: int = 5000
) -> Iterator[Sequence[EntryRow]]:
    """Entries from ``start`` (to ``end``), by position, in batches (keyset paging); plain
    rows with the columns of ``AuditEntry`` as attributes, for speed."""
    position = start
    while end is None or position < end:
        statement = sa.select(_ENTRIES).where(_ENTRIES.c.position >= position)
        if end is not None:
            statement = statement.where(_ENTRIES.c.position < end)
        rows = session.execute(statement.order_by(_ENTRIES.c.position).limit(batch)).all()
        if not rows:
            return
        yield rows
        position = rows[-1].position + 1


def _group_entries(query: EntryFilter) -> sa.Select[AuditEntry]:
    """The one statement builder for a group's entries: every auditor read starts here."""
    statement = sa.select(AuditEntry).where(col(AuditEntry.group_id) == query.group_id)
    if query.patient_id is not None:
        statement = statement.where(col(AuditEntry.patient_id) == query.patient_id)
    if query.actor_id is not None:
        statement = statement.where(col(AuditEntry.actor_id) == query.actor_id)
    if query.action is not None:
        statement = statement.where(col(AuditEntry.action) == query.action)
    if query.outcome is not None:
        statement = statement.where(col(AuditEntry.outcome) == query.outcome)
    if query.since is not None:
        statement = statement.where(col(AuditEntry.recorded) >= query.since)
    if query.until is not None:
        statement = statement.where(col(AuditEntry.recorded) < query.until)
    return statement


def find_entries(
    session: Session, query: EntryFilter, *, before: int | None, limit: int
) -> Sequence[AuditEntry]:
    """A group's entries, newest first, positions below ``before``."""
    statement = _group_entries(query)
    if before is not None:
        statement = statement.where(col(AuditEntry.position) < before)
    statement = statement.order_by(col(AuditEntry.position).desc()).limit(limit)
    return session.execute(statement).scalars().all()


def count_matching(session: Session, query: EntryFilter) -> int:
    """How many of a group's entries match ``query`` (the total of a search)."""
    inner = _group_entries(query).subquery()
    return int(session.execute(sa.select(sa.func.count()).select_from(inner)).scalar_one())


def entry_by_event_id(
    session: Session, group_id: uuid.UUID, event_id: uuid.UUID
) -> AuditEntry | None:
    """One of a group's entries, by the id of its AuditEvent."""
    statement = _group_entries(EntryFilter(group_id=group_id)).where(
        col(AuditEntry.event_id) == event_id
    )
    return session.execute(statement).scalars().first()


def group_span(session: Session, query: EntryFilter) -> tuple[int, int] | None:
    """The first and last positions of a group's entries matching ``query``."""
    inner = _group_entries(query).subquery()
    first, last = session.execute(
        sa.select(sa.func.min(inner.c.position), sa.func.max(inner.c.position))
    ).one()
    return None if first is None else (int(first), int(last))


@contextmanager
def snapshot(url: str) -> Iterator[Session]:
    """A read-only session that sees one consistent state of the log, without blocking
    appends: REPEATABLE READ on PostgreSQL; a deferred (reader) transaction on SQLite, whose
    WAL snapshot holds from its first read (hdsapp.core.db's BEGIN IMMEDIATE would lock out
    writers for the whole verification)."""
    if is_sqlite(url):
        engine = sa.create_engine(url, poolclass=NullPool)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")

        @sa.event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN")

    else:
        engine = make_engine(url, pool_size=1).execution_options(isolation_level="REPEATABLE READ")
    try:
        with Session(engine) as session:
            try:
                yield session
            finally:
                session.rollback()
    finally:
        engine.dispose()
