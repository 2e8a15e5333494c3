"""Every query of case threads, participants, messages, read positions, attachments, tasks,
break-the-glass grants and notification events.

Lists of threads and tasks go through the access-aware builder of the groups domain
(``plan_predicate``) with the SQL twins of the thread conditions of the policy table
(``thread_predicates``): the same predicates the single-thread decisions use, so a list never
returns, and an unread count never counts, what the caller may not see.

Posting serialises per thread: ``thread_with_participant(lock=True)`` takes the thread row
``FOR NO KEY UPDATE`` on PostgreSQL (rows that merely reference the thread, such as a new
participant, are not blocked); SQLite transactions already start with ``BEGIN IMMEDIATE``. A
message goes in with ``ON CONFLICT DO NOTHING`` on (thread, client_id): a client id used again
is found, not an error that would abort the transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col

from hdsapp.groups.repository import RowPredicate
from hdsapp.models.attachment import Attachment
from hdsapp.models.break_glass_grant import BreakGlassGrant
from hdsapp.models.membership import Membership
from hdsapp.models.message import Message
from hdsapp.models.notification_event import NotificationEvent
from hdsapp.models.patient import Patient
from hdsapp.models.read_position import ReadPosition
from hdsapp.models.task import Task
from hdsapp.models.thread import Thread
from hdsapp.models.thread_participant import ThreadParticipant
from hdsapp.models.user import User
from hdsapp.patients.repository import opposition_covers

# -- the thread conditions as SQL ----------------------------------------------------------------


def is_participant(thread_key: Any, user_id: uuid.UUID | None) -> ColumnElement[bool]:
    """``user_id`` is a current participant of the thread ``thread_key`` (id or column)."""
    return exists().where(
        col(ThreadParticipant.thread_id) == thread_key,
        col(ThreadParticipant.user_id) == user_id,
        col(ThreadParticipant.removed_at).is_(None),
    )


def holds_grant(
    thread_key: Any, user_id: uuid.UUID | None, now: dt.datetime
) -> ColumnElement[bool]:
    """``user_id`` holds an unexpired break-the-glass grant on the thread ``thread_key``."""
    return exists().where(
        col(BreakGlassGrant.thread_id) == thread_key,
        col(BreakGlassGrant.user_id) == user_id,
        col(BreakGlassGrant.expires_at) > now,
    )


def thread_predicates(now: dt.datetime) -> Mapping[str, RowPredicate]:
    """The SQL twin of each row condition of thread rules (hdsapp/policy/rules.toml), over
    the ``thread`` table (join it for the rows of tasks)."""
    thread_id, patient_id = col(Thread.id), col(Thread.patient_id)
    return MappingProxyType(
        {
            "participant": lambda actor: is_participant(thread_id, actor.user_id),
            "not_participant": lambda actor: ~is_participant(thread_id, actor.user_id),
            "break_glass": lambda actor: holds_grant(thread_id, actor.user_id, now),
            "thread_open": lambda _actor: col(Thread.status) == "open",
            "no_opposition": lambda actor: ~opposition_covers(patient_id, actor.user_id),
        }
    )


def add(session: Session, *rows: object) -> None:
    session.add_all(rows)
    session.flush()


# -- threads -----------------------------------------------------------------------------------


def patient_in_group(session: Session, group_id: uuid.UUID, patient_id: uuid.UUID) -> bool:
    statement = select(col(Patient.id)).where(
        col(Patient.group_id) == group_id, col(Patient.id) == patient_id
    )
    return session.execute(statement).first() is not None


def thread_by_id(session: Session, thread_id: uuid.UUID) -> Thread | None:
    return session.get(Thread, thread_id)


def thread_with_participant(
    session: Session, thread_id: uuid.UUID, user_id: uuid.UUID | None, *, lock: bool = False
) -> tuple[Thread, ThreadParticipant | None, str | None] | None:
    """The thread, the caller's current participation (None if not, or removed) and the
    caller's display name, in one query. ``lock``: the thread row is locked until the
    transaction ends, ``FOR NO KEY UPDATE OF thread`` on PostgreSQL (posts to the thread queue
    there; inserts that only reference the thread do not); SQLite renders no lock clause, its
    transactions hold the database's write lock already."""
    statement = (
        select(Thread, ThreadParticipant, col(User.display_name))
        .outerjoin(
            ThreadParticipant,
            and_(
                col(ThreadParticipant.thread_id) == col(Thread.id),
                col(ThreadParticipant.user_id) == user_id,
                col(ThreadParticipant.removed_at).is_(None),
            ),
        )
        .outerjoin(User, col(User.id) == user_id)
        .where(col(Thread.id) == thread_id)
    )
    if lock:
        statement = statement.with_for_update(key_share=True, of=Thread).execution_options(
            populate_existing=True
        )
    found = session.execute(statement).first()
    return None if found is None else (found[0], found[1], found[2])


def insert_message(session: Session, values: dict[str, Any]) -> bool:
    """Insert a message unless its (thread, client_id) is taken: the unique constraint decides,
    ``ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite) turns the conflict into "not inserted"
    without aborting the transaction. True if inserted."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(Message)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["thread_id", "client_id"])
        .returning(col(Message.id))
    )
    return session.execute(statement).first() is not None


def advance(session: Session, thread: Thread, seq: int, *, now: dt.datetime) -> None:
    """The thread's last seq is now ``seq`` (the thread row is locked)."""
    session.execute(
        update(Thread)
        .where(col(Thread.id) == thread.id)
        .values(last_seq=seq, last_activity_at=now)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(thread, "last_seq", seq)
    set_committed_value(thread, "last_activity_at", now)


def touch(session: Session, thread_id: uuid.UUID, now: dt.datetime) -> None:
    session.execute(
        update(Thread)
        .where(col(Thread.id) == thread_id)
        .values(last_activity_at=now)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True, slots=True)
class ThreadRow:
    thread: Thread
    read_seq: int
    unread: int
    participant: bool
    grant_expires_at: dt.datetime | None


def _floor(visible_from: Any, read: Any) -> Any:
    """The seq after which messages are unread: the read position, or where the caller's
    history starts if later."""
    return case((read > visible_from, read), else_=visible_from)


def _unread(thread_key: Any, user_id: uuid.UUID | None, floor: Any) -> Any:
    return (
        select(func.count())
        .select_from(Message)
        .where(
            col(Message.thread_id) == thread_key,
            col(Message.seq) > floor,
            col(Message.author_id) != user_id,
        )
        .scalar_subquery()
    )


def _participation(participant: Any, user_id: uuid.UUID | None) -> ColumnElement[bool]:
    """The join of ``thread`` with the caller's current participation (an aliased
    ``thread_participant``)."""
    return and_(
        col(participant.thread_id) == col(Thread.id),
        col(participant.user_id) == user_id,
        col(participant.removed_at).is_(None),
    )


def _thread_rows_statement(user_id: uuid.UUID | None, now: dt.datetime) -> Any:
    participant = aliased(ThreadParticipant)
    position = aliased(ReadPosition)
    visible_from = func.coalesce(col(participant.visible_from_seq), 0)
    read = func.coalesce(col(position.seq), 0)
    floor = _floor(visible_from, read)
    grant = (
        select(func.max(col(BreakGlassGrant.expires_at)))
        .where(
            col(BreakGlassGrant.thread_id) == col(Thread.id),
            col(BreakGlassGrant.user_id) == user_id,
            col(BreakGlassGrant.expires_at) > now,
        )
        .scalar_subquery()
    )
    unread = _unread(col(Thread.id), user_id, floor)
    statement = (
        select(
            Thread,
            read.label("read_seq"),
            unread.label("unread"),
            col(participant.id).is_not(None).label("participant"),
            grant.label("grant_expires_at"),
        )
        .outerjoin(participant, _participation(participant, user_id))
        .outerjoin(
            position,
            and_(col(position.thread_id) == col(Thread.id), col(position.user_id) == user_id),
        )
    )
    return statement, unread


def _thread_row(row: Any) -> ThreadRow:
    return ThreadRow(
        thread=row[0],
        read_seq=int(row[1]),
        unread=int(row[2]),
        participant=bool(row[3]),
        grant_expires_at=row[4],
    )


def thread_row(
    session: Session, thread_id: uuid.UUID, user_id: uuid.UUID | None, now: dt.datetime
) -> ThreadRow | None:
    statement, _ = _thread_rows_statement(user_id, now)
    found = session.execute(statement.where(col(Thread.id) == thread_id)).first()
    return None if found is None else _thread_row(found)


@dataclass(frozen=True, kw_only=True, slots=True)
class ThreadCriteria:
    """Which threads a list or search selects (``visible`` is a predicate over ``thread``):
    the page and its count share them."""

    visible: ColumnElement[bool]
    group_id: uuid.UUID
    statuses: Sequence[str]
    patient_reference: str | None = None
    ids: Sequence[uuid.UUID] | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions = [
            col(Thread.group_id) == self.group_id,
            self.visible,
            col(Thread.status).in_(self.statuses),
        ]
        if self.patient_reference is not None:
            conditions.append(col(Thread.patient_reference) == self.patient_reference)
        if self.ids is not None:
            conditions.append(col(Thread.id).in_(self.ids))
        return conditions


def list_threads(
    session: Session,
    *,
    where: ThreadCriteria,
    user_id: uuid.UUID | None,
    now: dt.datetime,
    unread_only: bool,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[ThreadRow]:
    statement, unread = _thread_rows_statement(user_id, now)
    statement = statement.where(*where.conditions())
    if unread_only:
        statement = statement.where(unread > 0)
    if after is not None:
        activity, last_id = after
        statement = statement.where(
            or_(
                col(Thread.last_activity_at) < activity,
                and_(col(Thread.last_activity_at) == activity, col(Thread.id) < last_id),
            )
        )
    statement = statement.order_by(
        col(Thread.last_activity_at).desc(), col(Thread.id).desc()
    ).limit(limit)
    return [_thread_row(row) for row in session.execute(statement).all()]


def count_threads(session: Session, *, where: ThreadCriteria) -> int:
    """How many threads ``list_threads`` pages through (without ``unread_only``)."""
    statement = select(func.count()).select_from(Thread).where(*where.conditions())
    return int(session.execute(statement).scalar_one())


def thread_counters(
    session: Session,
    *,
    visible: ColumnElement[bool],
    user_id: uuid.UUID,
    statuses: Sequence[str],
) -> list[tuple[uuid.UUID, uuid.UUID, int, int]]:
    """(thread, group, last seq, read position) of every thread ``visible`` lets the caller
    read: the one query of each poll of the live stream (no content, no unread count)."""
    read = func.coalesce(col(ReadPosition.seq), 0)
    statement = (
        select(col(Thread.id), col(Thread.group_id), col(Thread.last_seq), read)
        .outerjoin(
            ReadPosition,
            and_(
                col(ReadPosition.thread_id) == col(Thread.id),
                col(ReadPosition.user_id) == user_id,
            ),
        )
        .where(visible, col(Thread.status).in_(statuses))
    )
    return [(row[0], row[1], int(row[2]), int(row[3])) for row in session.execute(statement)]


def unread_counts(
    session: Session, thread_ids: Sequence[uuid.UUID], user_id: uuid.UUID, now: dt.datetime
) -> dict[uuid.UUID, int]:
    """The caller's unread count of each of ``thread_ids`` (as the thread list counts them)."""
    if not thread_ids:
        return {}
    statement, _ = _thread_rows_statement(user_id, now)
    rows = session.execute(statement.where(col(Thread.id).in_(thread_ids))).all()
    return {row[0].id: int(row[2]) for row in rows}


# -- participants ------------------------------------------------------------------------------


def participant(
    session: Session, thread_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
) -> ThreadParticipant | None:
    statement = select(ThreadParticipant).where(
        col(ThreadParticipant.thread_id) == thread_id,
        col(ThreadParticipant.user_id) == user_id,
    )
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def current_participant_ids(session: Session, thread_id: uuid.UUID) -> set[uuid.UUID]:
    statement = select(col(ThreadParticipant.user_id)).where(
        col(ThreadParticipant.thread_id) == thread_id,
        col(ThreadParticipant.removed_at).is_(None),
    )
    return set(session.execute(statement).scalars().all())


def list_participants(
    session: Session,
    *,
    thread_id: uuid.UUID,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[tuple[ThreadParticipant, User]]:
    statement = (
        select(ThreadParticipant, User)
        .join(User, col(User.id) == col(ThreadParticipant.user_id))
        .where(
            col(ThreadParticipant.thread_id) == thread_id,
            col(ThreadParticipant.removed_at).is_(None),
        )
    )
    if after is not None:
        added, last_id = after
        statement = statement.where(
            or_(
                col(ThreadParticipant.added_at) > added,
                and_(col(ThreadParticipant.added_at) == added, col(ThreadParticipant.id) > last_id),
            )
        )
    statement = statement.order_by(col(ThreadParticipant.added_at), col(ThreadParticipant.id))
    return [(row[0], row[1]) for row in session.execute(statement.limit(limit)).all()]


def current_participants(
    session: Session, thread_ids: Sequence[uuid.UUID]
) -> Sequence[tuple[ThreadParticipant, User]]:
    """The current participants of several threads, each thread's in the order they joined."""
    if not thread_ids:
        return []
    statement = (
        select(ThreadParticipant, User)
        .join(User, col(User.id) == col(ThreadParticipant.user_id))
        .where(
            col(ThreadParticipant.thread_id).in_(thread_ids),
            col(ThreadParticipant.removed_at).is_(None),
        )
        .order_by(col(ThreadParticipant.added_at), col(ThreadParticipant.id))
    )
    return [(row[0], row[1]) for row in session.execute(statement).all()]


def care_members_among(
    session: Session, group_id: uuid.UUID, user_ids: Sequence[uuid.UUID], *, now: dt.datetime
) -> set[uuid.UUID]:
    """Which of ``user_ids`` may join a circle of care in the group: active (and not expired)
    clinicians and coordinators. Auditors never take part in threads."""
    if not user_ids:
        return set()
    statement = select(col(Membership.user_id)).where(
        col(Membership.group_id) == group_id,
        col(Membership.user_id).in_(user_ids),
        col(Membership.status) == "active",
        col(Membership.role).in_(("clinician", "coordinator")),
        or_(col(Membership.ends_at).is_(None), col(Membership.ends_at) > now),
    )
    return set(session.execute(statement).scalars().all())


def active_coordinator_ids(
    session: Session, group_id: uuid.UUID, *, now: dt.datetime
) -> list[uuid.UUID]:
    statement = (
        select(col(Membership.user_id))
        .where(
            col(Membership.group_id) == group_id,
            col(Membership.role) == "coordinator",
            col(Membership.status) == "active",
            or_(col(Membership.ends_at).is_(None), col(Membership.ends_at) > now),
        )
        .order_by(col(Membership.user_id))
    )
    return list(session.execute(statement).scalars().all())


def display_names(session: Session, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not user_ids:
        return {}
    statement = select(col(User.id), col(User.display_name)).where(col(User.id).in_(set(user_ids)))
    return {row[0]: row[1] for row in session.execute(statement).all()}


# -- messages ----------------------------------------------------------------------------------


def message_by_client_id(session: Session, thread_id: uuid.UUID, client_id: str) -> Message | None:
    statement = select(Message).where(
        col(Message.thread_id) == thread_id, col(Message.client_id) == client_id
    )
    return session.scalars(statement).first()


def thread_of_client_id(session: Session, group_id: uuid.UUID, client_id: str) -> uuid.UUID | None:
    """The thread of the group holding a message with this client id (demo seeding)."""
    statement = (
        select(col(Message.thread_id))
        .join(Thread, col(Thread.id) == col(Message.thread_id))
        .where(col(Thread.group_id) == group_id, col(Message.client_id) == client_id)
        .limit(1)
    )
    found: uuid.UUID | None = session.execute(statement).scalar_one_or_none()
    return found


def message_by_id(session: Session, thread_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
    statement = select(Message).where(
        col(Message.thread_id) == thread_id, col(Message.id) == message_id
    )
    return session.scalars(statement).first()


def _thread_messages(thread_id: uuid.UUID, after: int) -> list[ColumnElement[bool]]:
    return [col(Message.thread_id) == thread_id, col(Message.seq) > after]


def list_messages(
    session: Session, *, thread_id: uuid.UUID, after: int, limit: int
) -> Sequence[tuple[Message, Attachment | None, str]]:
    """Messages with ``seq > after`` in order (an index range scan on (thread_id, seq)), with
    their attachment and their author's display name."""
    statement = (
        select(Message, Attachment, col(User.display_name))
        .outerjoin(Attachment, col(Attachment.message_id) == col(Message.id))
        .join(User, col(User.id) == col(Message.author_id))
        .where(*_thread_messages(thread_id, after))
        .order_by(col(Message.seq))
        .limit(limit)
    )
    return [(row[0], row[1], row[2]) for row in session.execute(statement).all()]


def count_thread_messages(session: Session, *, thread_id: uuid.UUID, after: int) -> int:
    """How many messages ``list_messages`` pages through from ``after``."""
    statement = select(func.count()).select_from(Message).where(*_thread_messages(thread_id, after))
    return int(session.execute(statement).scalar_one())


def _after(created: Any, key: Any, after: tuple[dt.datetime, uuid.UUID]) -> ColumnElement[bool]:
    """Rows after ``after`` in (created, id) order: the keyset of a page."""
    moment, last_id = after
    return or_(created > moment, and_(created == moment, key > last_id))


def message_with_attachment(
    session: Session, message_id: uuid.UUID
) -> tuple[Message, Attachment | None, str] | None:
    """One message with its attachment and its author's display name."""
    statement = (
        select(Message, Attachment, col(User.display_name))
        .outerjoin(Attachment, col(Attachment.message_id) == col(Message.id))
        .join(User, col(User.id) == col(Message.author_id))
        .where(col(Message.id) == message_id)
    )
    found = session.execute(statement).first()
    return None if found is None else (found[0], found[1], found[2])


@dataclass(frozen=True, slots=True)
class MessageRow:
    message: Message
    attachment: Attachment | None
    author_name: str
    thread: Thread
    participant: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageCriteria:
    """The messages of the group's threads that the caller may see (``visible`` is a
    predicate over ``thread``), about a patient and among ``ids`` if given; a participant who
    joined without the history sees only what followed. The page and its count share them."""

    visible: ColumnElement[bool]
    group_id: uuid.UUID
    user_id: uuid.UUID | None
    patient_reference: str | None = None
    ids: Sequence[uuid.UUID] | None = None

    def narrow(self, statement: Any, participant: Any) -> Any:
        """``statement`` (from ``message``) joined with ``thread`` and with the caller's
        participation (``participant``, an aliased ``thread_participant``), filtered."""
        conditions = [
            col(Thread.group_id) == self.group_id,
            self.visible,
            col(Message.seq) > func.coalesce(col(participant.visible_from_seq), 0),
        ]
        if self.patient_reference is not None:
            conditions.append(col(Thread.patient_reference) == self.patient_reference)
        if self.ids is not None:
            conditions.append(col(Message.id).in_(self.ids))
        return (
            statement.join(Thread, col(Thread.id) == col(Message.thread_id))
            .outerjoin(participant, _participation(participant, self.user_id))
            .where(*conditions)
        )


def search_messages(
    session: Session,
    *,
    where: MessageCriteria,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[MessageRow]:
    """The messages ``where`` selects, in the order they were posted."""
    participant = aliased(ThreadParticipant)
    columns = select(
        Message, Attachment, col(User.display_name), Thread, col(participant.id).is_not(None)
    ).select_from(Message)
    statement = (
        where.narrow(columns, participant)
        .join(User, col(User.id) == col(Message.author_id))
        .outerjoin(Attachment, col(Attachment.message_id) == col(Message.id))
    )
    if after is not None:
        statement = statement.where(_after(col(Message.created_at), col(Message.id), after))
    statement = statement.order_by(col(Message.created_at), col(Message.id)).limit(limit)
    return [
        MessageRow(row[0], row[1], row[2], row[3], bool(row[4]))
        for row in session.execute(statement).all()
    ]


def count_messages(session: Session, *, where: MessageCriteria) -> int:
    """How many messages ``search_messages`` pages through."""
    counted = select(func.count()).select_from(Message)
    statement = where.narrow(counted, aliased(ThreadParticipant))
    return int(session.execute(statement).scalar_one())


# -- read positions ----------------------------------------------------------------------------


def read_position(
    session: Session, thread_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
) -> ReadPosition | None:
    statement = select(ReadPosition).where(
        col(ReadPosition.thread_id) == thread_id, col(ReadPosition.user_id) == user_id
    )
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def unread_count(session: Session, thread_id: uuid.UUID, user_id: uuid.UUID, *, floor: int) -> int:
    return int(session.execute(select(_unread(thread_id, user_id, literal(floor)))).scalar_one())


# -- attachments -------------------------------------------------------------------------------


def attachment_with_message(
    session: Session, attachment_id: uuid.UUID
) -> tuple[Attachment, Message] | None:
    statement = (
        select(Attachment, Message)
        .join(Message, col(Message.id) == col(Attachment.message_id))
        .where(col(Attachment.id) == attachment_id)
    )
    found = session.execute(statement).first()
    return None if found is None else (found[0], found[1])


def attachment_by_message(session: Session, message_id: uuid.UUID) -> Attachment | None:
    statement = select(Attachment).where(col(Attachment.message_id) == message_id)
    return session.scalars(statement).first()


# -- tasks -------------------------------------------------------------------------------------


def task_by_id(session: Session, task_id: uuid.UUID, *, for_update: bool = False) -> Task | None:
    statement = select(Task).where(col(Task.id) == task_id)
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def list_tasks(
    session: Session,
    *,
    thread_id: uuid.UUID,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Task]:
    statement = select(Task).where(col(Task.thread_id) == thread_id)
    if after is not None:
        created, last_id = after
        statement = statement.where(
            or_(
                col(Task.created_at) > created,
                and_(col(Task.created_at) == created, col(Task.id) > last_id),
            )
        )
    statement = statement.order_by(col(Task.created_at), col(Task.id)).limit(limit)
    return session.scalars(statement).all()


OPEN_TASK_STATUSES = ("requested", "accepted", "in-progress")
NO_DUE_DATE = dt.date(9999, 12, 31)


def my_tasks(
    session: Session,
    *,
    visible: ColumnElement[bool],
    user_id: uuid.UUID,
    after: tuple[dt.date, dt.datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[tuple[Task, Thread]]:
    """Open tasks assigned to ``user_id`` in threads the caller may see (``visible`` is a
    predicate over ``thread``), soonest due first (no due date last)."""
    due = func.coalesce(col(Task.due_date), NO_DUE_DATE)
    statement = (
        select(Task, Thread)
        .join(Thread, col(Thread.id) == col(Task.thread_id))
        .where(
            col(Task.assignee_id) == user_id,
            col(Task.status).in_(OPEN_TASK_STATUSES),
            visible,
        )
    )
    if after is not None:
        last_due, created, last_id = after
        statement = statement.where(
            or_(
                due > last_due,
                and_(due == last_due, col(Task.created_at) > created),
                and_(due == last_due, col(Task.created_at) == created, col(Task.id) > last_id),
            )
        )
    statement = statement.order_by(due, col(Task.created_at), col(Task.id)).limit(limit)
    return [(row[0], row[1]) for row in session.execute(statement).all()]


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskCriteria:
    """The tasks of the group's threads the caller may see (``visible`` is a predicate over
    ``thread``, joined), by assignee, statuses, patient and thread: the page and its count
    share them."""

    visible: ColumnElement[bool]
    group_id: uuid.UUID
    owner: uuid.UUID | None = None
    statuses: Sequence[str] | None = None
    patient_reference: str | None = None
    thread_id: uuid.UUID | None = None

    def narrow(self, statement: Any) -> Any:
        """``statement`` (from ``task``) joined with ``thread``, filtered."""
        conditions = [col(Thread.group_id) == self.group_id, self.visible]
        if self.owner is not None:
            conditions.append(col(Task.assignee_id) == self.owner)
        if self.statuses is not None:
            conditions.append(col(Task.status).in_(self.statuses))
        if self.patient_reference is not None:
            conditions.append(col(Thread.patient_reference) == self.patient_reference)
        if self.thread_id is not None:
            conditions.append(col(Task.thread_id) == self.thread_id)
        return statement.join(Thread, col(Thread.id) == col(Task.thread_id)).where(*conditions)


def search_tasks(
    session: Session,
    *,
    where: TaskCriteria,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[tuple[Task, Thread]]:
    """The tasks ``where`` selects, oldest first."""
    statement = where.narrow(select(Task, Thread).select_from(Task))
    if after is not None:
        statement = statement.where(_after(col(Task.created_at), col(Task.id), after))
    statement = statement.order_by(col(Task.created_at), col(Task.id)).limit(limit)
    return [(row[0], row[1]) for row in session.execute(statement).all()]


def count_tasks(session: Session, *, where: TaskCriteria) -> int:
    """How many tasks ``search_tasks`` pages through."""
    statement = where.narrow(select(func.count()).select_from(Task))
    return int(session.execute(statement).scalar_one())


# -- break-the-glass and notifications -----------------------------------------------------------


def active_grant(
    session: Session, thread_id: uuid.UUID, user_id: uuid.UUID, now: dt.datetime
) -> BreakGlassGrant | None:
    statement = (
        select(BreakGlassGrant)
        .where(
            col(BreakGlassGrant.thread_id) == thread_id,
            col(BreakGlassGrant.user_id) == user_id,
            col(BreakGlassGrant.expires_at) > now,
        )
        .order_by(col(BreakGlassGrant.expires_at).desc())
    )
    return session.scalars(statement).first()


def notifications_for(session: Session, recipient_id: uuid.UUID) -> Sequence[NotificationEvent]:
    statement = (
        select(NotificationEvent)
        .where(col(NotificationEvent.recipient_id) == recipient_id)
        .order_by(col(NotificationEvent.created_at))
    )
    return session.scalars(statement).all()
