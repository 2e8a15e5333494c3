"""Posting and reading messages (gap-free seqs under the thread's lock, idempotent client ids)
and read positions."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from hdsapp.config import Settings
from hdsapp.core.accesslog import AuditScope, audited
from hdsapp.core.actor import Actor
from hdsapp.core.db import Database
from hdsapp.core.errors import (
    BadRequest,
    Conflict,
    InternalError,
)
from hdsapp.groups import pagination
from hdsapp.groups import repository as groups_repository
from hdsapp.groups import service as groups
from hdsapp.models.attachment import Attachment
from hdsapp.models.message import Message
from hdsapp.models.read_position import ReadPosition
from hdsapp.models.thread import Thread
from hdsapp.policy import Context, Resource, ResourceType, row_plan
from hdsapp.threads import repository
from hdsapp.threads.schemas import (
    AttachmentPublic,
    MessageCreate,
    MessageList,
    MessagePublic,
    ReadState,
)
from hdsapp.threads.service.common import (
    EMERGENCY,
    MAX_BODY_CHARS,
    Keyring,
    _access,
    _attachment_aad,
    _authorize,
    _client_id,
    _invalid,
    _load,
    _message_aad,
    _standing,
    _text,
    authorize,
    not_found,
    patient_reference,
)


def _attachment_public(
    session: Session, keyring: Keyring, thread: Thread, attachment: Attachment
) -> AttachmentPublic:
    aad = _attachment_aad(thread, attachment.id, attachment.uploaded_by)
    name = keyring.open(session, aad=aad, envelope=attachment.filename).decode()
    return AttachmentPublic(
        id=attachment.id,
        document_type=attachment.document_type,
        content_type=attachment.content_type,
        size=attachment.size,
        filename=name or None,
    )


def _message_public(
    session: Session,
    keyring: Keyring,
    thread: Thread,
    message: Message,
    *,
    attachment: Attachment | None,
    names: dict[uuid.UUID, str],
    body: str | None = None,
) -> MessagePublic:
    if body is None:
        aad = _message_aad(thread, message.id, message.author_id)
        body = keyring.open(session, aad=aad, envelope=message.body).decode()
    return MessagePublic(
        id=message.id,
        thread_id=message.thread_id,
        seq=message.seq,
        author=message.author_id,
        author_name=names.get(message.author_id),
        created_at=message.created_at,
        body=body,
        client_id=message.client_id,
        corrects=message.corrects_id,
        patient=thread.patient_reference,
        attachment=(
            _attachment_public(session, keyring, thread, attachment) if attachment else None
        ),
    )


def list_messages(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
    after: int | None,
    cursor: str | None,
    limit: int,
    with_total: bool = False,
) -> MessageList:
    """Messages with a seq above ``after`` (or ``cursor``), at most ``limit`` (≤ 100), in
    order. A participant who joined without the history sees only what followed.
    ``with_total``: and the number of messages the caller may read in the thread (``total``)."""
    access = _access("search", "E", "Communication", query="Communication?thread")
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "message.list",
            ResourceType.MESSAGE,
            context=context,
            scope=scope,
        )
        if cursor is not None:
            if not cursor.isdigit() or len(cursor) > 18:
                raise _bad_cursor()
            after = int(cursor)
        start = max(after or 0, standing.history_from)
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        rows = repository.list_messages(session, thread_id=thread_id, after=start, limit=limit + 1)
        page = rows[:limit]
        names = {m.author_id: name for m, _, name in page}
        thread = standing.thread
        items = [
            _message_public(session, keyring, thread, m, attachment=a, names=names)
            for m, a, _ in page
        ]
        total = None
        if with_total:
            total = repository.count_thread_messages(
                session, thread_id=thread_id, after=standing.history_from
            )
        return MessageList(
            items=items,
            next_cursor=str(page[-1][0].seq) if len(rows) > limit else None,
            total=total,
        )


def get_message(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    message_id: uuid.UUID,
) -> MessagePublic:
    """One message (FHIR Communication read), under the policy action of reading the thread's
    messages (``message.list``); a message from before the caller's history is not found."""
    access = _access("read", "R", "Communication", resource_id=str(message_id))
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        found = repository.message_with_attachment(session, message_id)
        if found is None:
            raise not_found(ResourceType.MESSAGE)
        message, attachment, name = found
        standing = _standing(session, actor, message.thread_id, context.now)
        _authorize(
            actor, "message.list", standing, ResourceType.MESSAGE, context=context, scope=scope
        )
        if message.seq <= standing.history_from:
            raise not_found(ResourceType.MESSAGE)
        names = {message.author_id: name}
        return _message_public(
            session, keyring, standing.thread, message, attachment=attachment, names=names
        )


def _group_search(
    actor: Actor, group_id: uuid.UUID, session: Session, context: Context, scope: AuditScope
) -> None:
    """A search across the group's threads is allowed as listing them (``thread.list``); the
    rows are then filtered by the row plan of the rows' own read action."""
    resource = Resource(type=ResourceType.THREAD, group_id=group_id)
    authorize(actor, "thread.list", resource, context, scope)
    if groups_repository.group_by_id(session, group_id) is None:
        raise groups.not_found(ResourceType.GROUP)


def _visible(actor: Actor, action: str, context: Context) -> ColumnElement[bool]:
    return groups_repository.plan_predicate(
        row_plan(actor, action, context),
        actor,
        col(Thread.group_id),
        repository.thread_predicates(context.now),
    )


def search_messages(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    patient: str | None,
    cursor: str | None,
    limit: int,
    ids: Sequence[uuid.UUID] | None = None,
) -> MessageList:
    """The messages in the group's threads the caller may read, about a patient and among
    ``ids`` if given (FHIR Communication search by patient or ``_id``), oldest first, with how
    many match (``total``): allowed as listing the threads (``thread.list``), rows filtered in
    SQL by the row plan of ``message.list``."""
    asked = (("patient", patient is not None), ("_id", ids is not None))
    query = "Communication?" + "&".join(f"{name}=*" for name, used in asked if used)
    access = _access("search", "E", "Communication", group_id=group_id, query=query)
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        _group_search(actor, group_id, session, context, scope)
        reference = None
        if patient is not None:
            scope.patient_id, reference = patient_reference(patient)
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        criteria = repository.MessageCriteria(
            visible=_visible(actor, "message.list", context),
            group_id=group_id,
            user_id=actor.user_id,
            patient_reference=reference,
            ids=ids,
        )
        rows = repository.search_messages(session, where=criteria, after=after, limit=limit + 1)
        total = repository.count_messages(session, where=criteria)
        page = rows[:limit]
        scope.result_refs = [f"Communication/{r.message.id}" for r in page]
        if any(not r.participant for r in page):
            scope.purpose_of_use = "ETREAT"
            scope.legal_basis = EMERGENCY
            scope.reason = "break-the-glass: messages read under a grant"
        items = [
            _message_public(
                session,
                keyring,
                r.thread,
                r.message,
                attachment=r.attachment,
                names={r.message.author_id: r.author_name},
            )
            for r in page
        ]
        last = page[-1].message if len(rows) > limit else None
        return MessageList(
            items=items,
            next_cursor=pagination.encode_cursor(last.created_at, last.id) if last else None,
            total=total,
        )


def _bad_cursor() -> BadRequest:
    return BadRequest("The cursor is not valid.", code="invalid-cursor")


@dataclass(frozen=True, slots=True)
class Posted:
    message: MessagePublic
    created: bool  # False: the client_id was already used, this is the message it made


def _replay(
    session: Session,
    keyring: Keyring,
    thread: Thread,
    actor: Actor,
    existing: Message,
) -> Posted:
    if existing.author_id != actor.user_id:
        raise Conflict(
            "This client_id was used by someone else in this thread.", code="client-id-in-use"
        )
    attachment = repository.attachment_by_message(session, existing.id)
    names = repository.display_names(session, [existing.author_id])
    return Posted(
        _message_public(session, keyring, thread, existing, attachment=attachment, names=names),
        False,
    )


def _insert_message(
    session: Session, thread: Thread, message: Message, *extra: object, now: dt.datetime
) -> bool:
    """Insert ``message`` with the thread's next seq (the thread row is locked), then ``extra``
    rows that reference it; False, and nothing written, if its client_id is taken (the unique
    constraint on (thread, client_id), as ``ON CONFLICT DO NOTHING``)."""
    message.seq = thread.last_seq + 1
    values = {
        "id": message.id,
        "thread_id": message.thread_id,
        "seq": message.seq,
        "author_id": message.author_id,
        "client_id": message.client_id,
        "body": message.body,
        "corrects_id": message.corrects_id,
        "created_at": message.created_at,
    }
    if not repository.insert_message(session, values):
        return False
    repository.advance(session, thread, message.seq, now=now)
    if extra:
        repository.add(session, *extra)
    return True


def post_message(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
    request: MessageCreate,
) -> Posted:
    """Post a message (201), or return the one this ``client_id`` already made (200)."""
    with audited(session, database, actor, _access("create", "C", "Communication")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "message.post",
            ResourceType.MESSAGE,
            context=context,
            scope=scope,
            lock=True,
        )
        assert actor.user_id is not None
        thread = standing.thread
        client_id = _client_id(request.client_id)
        body = _text(request.body, field="body", maximum=MAX_BODY_CHARS, code="body", strip=False)
        if request.corrects is not None and (
            repository.message_by_id(session, thread.id, request.corrects) is None
        ):
            raise _invalid("corrects", "a message of this thread", "invalid-correction")
        message = Message(
            thread_id=thread.id,
            seq=0,
            author_id=actor.user_id,
            client_id=client_id,
            body=b"",
            corrects_id=request.corrects,
            created_at=context.now,
        )
        message.body = keyring.seal(
            session, aad=_message_aad(thread, message.id, actor.user_id), plaintext=body.encode()
        )
        if not _insert_message(session, thread, message, now=context.now):
            existing = repository.message_by_client_id(session, thread.id, client_id)
            if existing is None:
                raise InternalError("The message could not be stored.")
            scope.resource_id = str(existing.id)
            return _replay(session, keyring, thread, actor, existing)
        scope.resource_id = str(message.id)
        names = {actor.user_id: standing.caller_name or ""}
        public = _message_public(
            session, keyring, thread, message, attachment=None, names=names, body=body
        )
        return Posted(public, True)


def mark_read(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    thread_id: uuid.UUID,
    seq: int,
) -> ReadState:
    """Everything up to ``seq`` is read (the position never moves back)."""
    with audited(session, database, actor, _access("update", "U", "CareTeam")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "message.mark_read",
            ResourceType.MESSAGE,
            context=context,
            scope=scope,
        )
        assert actor.user_id is not None
        thread = standing.thread
        if seq < 0:
            raise _invalid("seq", "0 or more", "invalid-seq")
        if seq > thread.last_seq:
            raise _invalid("seq", "at most the thread's last seq", "beyond-last-message")
        position = repository.read_position(session, thread.id, actor.user_id, for_update=True)
        if position is None:
            position = ReadPosition(thread_id=thread.id, user_id=actor.user_id, seq=seq)
            try:
                with session.begin_nested():
                    position.updated_at = context.now
                    session.add(position)
                    session.flush()
            except IntegrityError:
                # Another device of the same user got there first.
                position = repository.read_position(
                    session, thread.id, actor.user_id, for_update=True
                )
                assert position is not None
        if seq > position.seq:
            position.seq = seq
            position.updated_at = context.now
            repository.add(session, position)
        floor = max(position.seq, standing.history_from)
        unread = repository.unread_count(session, thread.id, actor.user_id, floor=floor)
        return ReadState(
            thread_id=thread.id, read_seq=position.seq, last_seq=thread.last_seq, unread=unread
        )
