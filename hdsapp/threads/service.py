"""Use cases of case threads: threads, participants, messages, read state, attachments, tasks and
break-the-glass.

Every use case runs inside ``accesslog.audited`` (one entry per call, refusals and bad input
included), asks the policy (``hdsapp/policy/rules.toml``) with what it knows about the thread —
is the caller a participant, do they hold an unexpired break-the-glass grant, is the thread open,
does an opposition of the patient cover them — and never commits.

Content is sealed with the thread's data key (the key store picks it from the associated data):
titles bound to the thread, message bodies to group, thread, message id and author, task
descriptions to the task, attachment contents chunk by chunk to the attachment. Reads under a
break-the-glass grant are recorded with purpose of use ETREAT, the legal basis
``emergency-access`` and the grant they rely on.

Posting: the thread row is locked (``repository.lock_thread``) before the next ``seq`` is
taken, so seqs are gap-free and never fork while posts to other threads proceed; a
``client_id`` already used in the thread returns the message it made (under the lock the second
poster sees the first's commit; the unique constraint is the backstop, caught in a savepoint).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from sqlalchemy import ColumnElement
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from hdsapp.config import Settings
from hdsapp.core.accesslog import Access, AuditScope, audited
from hdsapp.core.actor import Actor
from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.chunks import MAX_CHUNK_SIZE, read_sealed_chunks
from hdsapp.core.db import Database, utcnow
from hdsapp.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InternalError,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from hdsapp.groups import pagination
from hdsapp.groups import repository as groups_repository
from hdsapp.groups import service as groups
from hdsapp.models.attachment import DOCUMENT_TYPES, Attachment
from hdsapp.models.break_glass_grant import BreakGlassGrant
from hdsapp.models.message import Message
from hdsapp.models.notification_event import NotificationEvent
from hdsapp.models.read_position import ReadPosition
from hdsapp.models.task import Task
from hdsapp.models.thread import Thread
from hdsapp.models.thread_participant import ThreadParticipant
from hdsapp.models.user import User
from hdsapp.patients import service as patients
from hdsapp.policy import Context, Decision, Resource, ResourceType, decide, row_plan
from hdsapp.threads import blobs, content, repository
from hdsapp.threads.schemas import (
    AttachmentPublic,
    BreakGlassCreate,
    BreakGlassPublic,
    MessageCreate,
    MessageList,
    MessagePublic,
    ParticipantAdd,
    ParticipantList,
    ParticipantPublic,
    ReadState,
    TaskCreate,
    TaskList,
    TaskPublic,
    TaskUpdate,
    ThreadCreate,
    ThreadEvent,
    ThreadList,
    ThreadPublic,
    ThreadUpdate,
)

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 20_000
MAX_TASK_CHARS = 2_000
MAX_FILENAME_CHARS = 255
MIN_REASON_CHARS = 20
MAX_REASON_CHARS = 1_000
MAX_REFERENCE_CHARS = 2048
CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Plaintext bytes per sealed chunk of an attachment (at most core.crypto.chunks' 1 MiB).
ATTACHMENT_CHUNK_BYTES = MAX_CHUNK_SIZE
LOCAL_PATIENT = re.compile(r"Patient/([0-9a-fA-F-]{36})")
DEFAULT_STATUSES = ("open", "closed")
THREAD_STATUSES = ("open", "closed", "archived")
EMERGENCY = "emergency-access"

# FHIR Task status transitions (http://hl7.org/fhir/task-status), the subset used here.
TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"accepted", "in-progress", "cancelled"}),
    "accepted": frozenset({"in-progress", "cancelled"}),
    "in-progress": frozenset({"completed", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}


class Keyring(patients.Keyring, Protocol):
    """The key store (hdsapp.core.crypto.keyring): the part the threads domain uses."""

    def create_thread_key(
        self, session: Session, *, group_id: uuid.UUID, thread_id: uuid.UUID
    ) -> None: ...

    def seal_chunks(
        self,
        session: Session,
        *,
        aad: AssociatedData,
        plaintext: Iterable[bytes],
        chunk_size: int = ...,
    ) -> Iterator[bytes]: ...

    def open_chunks(
        self, session: Session, *, aad: AssociatedData, envelopes: Iterable[bytes]
    ) -> Iterator[bytes]: ...


# -- associated data ---------------------------------------------------------------------------


def _title_aad(thread: Thread) -> AssociatedData:
    return AssociatedData(
        RecordKind.THREAD_TITLE,
        group_id=str(thread.group_id),
        thread_id=str(thread.id),
        record_id=str(thread.id),
    )


def _message_aad(thread: Thread, message_id: uuid.UUID, author_id: uuid.UUID) -> AssociatedData:
    return AssociatedData(
        RecordKind.MESSAGE,
        group_id=str(thread.group_id),
        thread_id=str(thread.id),
        record_id=str(message_id),
        author_id=str(author_id),
    )


def _attachment_aad(
    thread: Thread, attachment_id: uuid.UUID, uploader_id: uuid.UUID
) -> AssociatedData:
    """Of the content (chunk by chunk) and, without a chunk index, of the file name."""
    return AssociatedData(
        RecordKind.ATTACHMENT,
        group_id=str(thread.group_id),
        thread_id=str(thread.id),
        record_id=str(attachment_id),
        author_id=str(uploader_id),
    )


def _task_aad(thread: Thread, task_id: uuid.UUID) -> AssociatedData:
    return AssociatedData(
        RecordKind.TASK,
        group_id=str(thread.group_id),
        thread_id=str(thread.id),
        record_id=str(task_id),
    )


# -- input -------------------------------------------------------------------------------------


def _invalid(field: str, message: str, code: str) -> Unprocessable:
    return Unprocessable(
        "The request is not valid.",
        code=code,
        extra={"errors": [{"loc": ["body", field], "msg": message}]},
    )


def _text(value: str, *, field: str, maximum: int, code: str, strip: bool = True) -> str:
    text = value.strip() if strip else value
    if not text.strip():
        raise _invalid(field, "may not be empty", f"empty-{code}")
    if len(text) > maximum:
        raise _invalid(field, f"at most {maximum} characters", f"{code}-too-long")
    return text


def _client_id(value: str) -> str:
    if not CLIENT_ID.fullmatch(value):
        raise _invalid("client_id", "1 to 64 of A-Z a-z 0-9 . _ : -", "invalid-client-id")
    return value


def patient_reference(value: str) -> tuple[uuid.UUID | None, str]:
    """``Patient/{uuid}`` (a patient of the group) or an absolute http(s) URL ending in
    ``Patient/{id}`` (a FHIR server elsewhere, stored and never fetched): (local id, reference)."""
    value = value.strip()
    local = LOCAL_PATIENT.fullmatch(value)
    if local:
        try:
            patient_id = uuid.UUID(local.group(1))
        except ValueError:
            raise _invalid("patient", "Patient/{id} with a valid id", "invalid-patient") from None
        return patient_id, f"Patient/{patient_id}"
    parts = urlsplit(value)
    segments = parts.path.rstrip("/").split("/")
    if (
        len(value) > MAX_REFERENCE_CHARS
        or parts.scheme not in {"https", "http"}
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.fragment
        or parts.query
        or len(segments) < 2
        or segments[-2] != "Patient"
        or not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", segments[-1])
        or any(ord(c) < 33 for c in value)
    ):
        raise _invalid(
            "patient",
            "Patient/{id}, or the absolute URL of a Patient on a FHIR server",
            "invalid-patient",
        )
    return None, value


def _clean_filename(value: str | None) -> str | None:
    if value is None:
        return None
    name = unicodedata.normalize("NFC", value).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:MAX_FILENAME_CHARS] or None


# -- the thread as the policy sees it ------------------------------------------------------------

_NOT_FOUND = {
    ResourceType.THREAD: "No such thread.",
    ResourceType.PARTICIPANT: "No such thread.",
    ResourceType.MESSAGE: "No such thread.",
    ResourceType.ATTACHMENT: "No such attachment.",
    ResourceType.TASK: "No such task.",
    ResourceType.GRANT: "No such thread.",
}


def not_found(type_: ResourceType) -> NotFound:
    """The one 404 of a thread's resources: the same for "absent" and "not yours"."""
    return NotFound(_NOT_FOUND[type_])


def authorize(
    actor: Actor, action: str, resource: Resource, context: Context, scope: AuditScope
) -> Decision:
    """As ``groups.authorize`` (the legal basis, or the refusal's reason, into the audit
    scope), with the 404 of the thread's resources; a group-level action (open, list) answers
    404 as the care group does."""
    decision = decide(actor, action, resource, context)
    if decision.allowed:
        scope.legal_basis = decision.legal_basis
        return decision
    scope.outcome_desc = f"policy:{decision.reason}"
    if decision.status == 404 and decision.reason != "unauthenticated":
        if resource.id is None and resource.group_id is not None:
            raise groups.not_found(ResourceType.GROUP)
        raise not_found(resource.type)
    raise groups.refusal(decision, resource.type, context)


@dataclass(frozen=True, slots=True)
class ThreadAccess:
    """A thread and the caller's standing in it, as loaded for one request."""

    thread: Thread
    participant: ThreadParticipant | None
    grant: BreakGlassGrant | None
    opposed: bool
    caller_name: str | None = None

    def resource(self, type_: ResourceType) -> Resource:
        return Resource(
            type=type_,
            group_id=self.thread.group_id,
            id=self.thread.id,
            opposition_applies=self.opposed,
            participant=self.participant is not None,
            break_glass_active=self.grant is not None,
            thread_open=self.thread.status == "open",
        )

    @property
    def history_from(self) -> int:
        """Messages with a seq above this one are visible (0: all of them)."""
        return self.participant.visible_from_seq if self.participant is not None else 0


def _standing(
    session: Session, actor: Actor, thread_id: uuid.UUID, now: dt.datetime, *, lock: bool = False
) -> ThreadAccess:
    """The thread (404 if there is none) and the caller's standing in it."""
    found = repository.thread_with_participant(session, thread_id, actor.user_id, lock=lock)
    if found is None:
        raise not_found(ResourceType.THREAD)
    thread, member, name = found
    user_id = actor.user_id
    if user_id is None or actor.role_in(thread.group_id) is None:
        # Outside the group: the policy refuses (404) whatever the standing.
        return ThreadAccess(thread=thread, participant=None, grant=None, opposed=False)
    # A grant only matters to someone who is not a participant (the table's participant rules
    # come first, and break-the-glass is for outsiders).
    grant = (
        None if member is not None else repository.active_grant(session, thread.id, user_id, now)
    )
    opposed = thread.patient_id is not None and patients.opposition_applies(
        session, patient_id=thread.patient_id, user_id=user_id
    )
    return ThreadAccess(
        thread=thread, participant=member, grant=grant, opposed=opposed, caller_name=name
    )


def _authorize(
    actor: Actor,
    action: str,
    standing: ThreadAccess,
    type_: ResourceType,
    *,
    context: Context,
    scope: AuditScope,
) -> None:
    """The policy's decision on the thread; the audit entry names the thread's group and
    patient, and a read that relies on break-the-glass says so (ETREAT and the grant)."""
    scope.group_id = standing.thread.group_id
    scope.patient_id = standing.thread.patient_id
    decision = authorize(actor, action, standing.resource(type_), context, scope)
    if decision.legal_basis == EMERGENCY and standing.grant is not None:
        scope.purpose_of_use = "ETREAT"
        scope.reason = f"break-the-glass grant urn:uuid:{standing.grant.id}"


def _load(
    session: Session,
    actor: Actor,
    thread_id: uuid.UUID,
    action: str,
    type_: ResourceType,
    *,
    context: Context,
    scope: AuditScope,
    lock: bool = False,
) -> ThreadAccess:
    scope.resource_id = scope.resource_id or str(thread_id)
    standing = _standing(session, actor, thread_id, context.now, lock=lock)
    _authorize(actor, action, standing, type_, context=context, scope=scope)
    return standing


def _access(
    kind: str,
    action: Literal["C", "R", "U", "D", "E"],
    resource_type: str,
    *,
    group_id: uuid.UUID | None = None,
    resource_id: str | None = None,
    query: str | None = None,
) -> Access:
    return Access(
        kind=kind,
        action=action,
        resource_type=resource_type,
        group_id=group_id,
        resource_id=resource_id,
        query=query,
    )


# -- threads -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CareTeam:
    """A thread and its circle of care (current participants), as FHIR serves it."""

    thread: ThreadPublic
    members: list[ParticipantPublic]


@dataclass(frozen=True, slots=True)
class CareTeamList:
    items: list[CareTeam]
    next_cursor: str | None
    total: int | None = None  # the matching threads the caller may read, if asked


def _participant_public(row: ThreadParticipant, user: User) -> ParticipantPublic:
    return ParticipantPublic(
        user_id=row.user_id,
        display_name=user.display_name,
        profession=user.profession,
        added_at=row.added_at,
        added_by=row.added_by,
        shares_history=row.visible_from_seq == 0,
    )


def _members(
    session: Session, thread_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ParticipantPublic]]:
    found: dict[uuid.UUID, list[ParticipantPublic]] = {}
    for row, user in repository.current_participants(session, thread_ids):
        found.setdefault(row.thread_id, []).append(_participant_public(row, user))
    return found


def _thread_public(
    session: Session,
    keyring: Keyring,
    row: repository.ThreadRow,
    display: dict[uuid.UUID, str],
) -> ThreadPublic:
    thread = row.thread
    title = keyring.open(session, aad=_title_aad(thread), envelope=thread.title).decode()
    grant_expiry = None if row.participant else row.grant_expires_at
    return ThreadPublic(
        id=thread.id,
        group_id=thread.group_id,
        patient=thread.patient_reference,
        patient_display=display.get(thread.patient_id) if thread.patient_id else None,
        title=title,
        priority=thread.priority,
        status=thread.status,
        created_by=thread.created_by,
        created_at=thread.created_at,
        last_activity_at=thread.last_activity_at,
        last_seq=thread.last_seq,
        unread=row.unread,
        read_seq=row.read_seq,
        access="participant"
        if row.participant
        else "break-glass"
        if grant_expiry
        else "coordinator",
        break_glass_expires_at=grant_expiry,
    )


def _display(
    session: Session, keyring: Keyring, group_id: uuid.UUID, threads: Sequence[Thread]
) -> dict[uuid.UUID, str]:
    ids = [t.patient_id for t in threads if t.patient_id is not None]
    if not ids:
        return {}
    return patients.display_names(
        session=session, keyring=keyring, group_id=group_id, patient_ids=ids
    )


def _one_thread(
    session: Session, keyring: Keyring, actor: Actor, thread: Thread, now: dt.datetime
) -> ThreadPublic:
    row = repository.thread_row(session, thread.id, actor.user_id, now)
    assert row is not None
    return _thread_public(
        session, keyring, row, _display(session, keyring, thread.group_id, [thread])
    )


def open_thread(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    request: ThreadCreate,
) -> ThreadPublic:
    """Open a thread about a patient (201). The creator is always a participant; the others
    must be active clinicians or coordinators of the group. Refused (403) when an opposition
    of the patient covers the caller."""
    access = _access("create", "C", "CareTeam", group_id=group_id)
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        patient_id, reference = patient_reference(request.patient)
        scope.patient_id = patient_id
        in_group = actor.role_in(group_id) is not None and actor.user_id is not None
        patient = (
            patient_id is not None
            and in_group
            and repository.patient_in_group(session, group_id, patient_id)
        )
        opposed = (
            patient
            and patient_id is not None
            and actor.user_id is not None
            and patients.opposition_applies(session, patient_id=patient_id, user_id=actor.user_id)
        )
        resource = Resource(
            type=ResourceType.THREAD, group_id=group_id, opposition_applies=bool(opposed)
        )
        authorize(actor, "thread.create", resource, context, scope)
        assert actor.user_id is not None
        if groups_repository.group_by_id(session, group_id) is None:
            raise groups.not_found(ResourceType.GROUP)
        if patient_id is not None and not patient:
            raise _invalid("patient", "no such patient in this care group", "unknown-patient")
        title = _text(request.title, field="title", maximum=MAX_TITLE_CHARS, code="title")
        others = sorted(set(request.participants) - {actor.user_id})
        allowed = repository.care_members_among(session, group_id, others, now=context.now)
        if set(others) - allowed:
            raise _invalid(
                "participants",
                "participants are active clinicians or coordinators of the group",
                "invalid-participants",
            )
        thread = Thread(
            group_id=group_id,
            patient_id=patient_id,
            patient_reference=reference,
            title=b"",
            priority=request.priority,
            created_by=actor.user_id,
            created_at=context.now,
            updated_at=context.now,
            last_activity_at=context.now,
        )
        keyring.create_thread_key(session, group_id=group_id, thread_id=thread.id)
        thread.title = keyring.seal(session, aad=_title_aad(thread), plaintext=title.encode())
        repository.add(session, thread)
        repository.add(
            session,
            *(
                ThreadParticipant(
                    thread_id=thread.id, user_id=user, added_by=actor.user_id, added_at=context.now
                )
                for user in [actor.user_id, *others]
            ),
        )
        scope.resource_id = str(thread.id)
        return _one_thread(session, keyring, actor, thread, context.now)


def list_threads(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    status: str | None,
    patient: str | None,
    unread: bool,
    cursor: str | None,
    limit: int,
) -> ThreadList:
    """The threads of the group the caller may read (their own, and those they hold an
    unexpired break-the-glass grant on), most recent activity first, with unread counts;
    filtered in SQL by the policy's row plan of ``thread.read``."""
    query = "CareTeam?" + "&".join(
        part
        for part in (
            f"status={status}" if status else "",
            "patient=*" if patient else "",
            "unread=true" if unread else "",
        )
        if part
    )
    found = _list_threads(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        where=ThreadFilter(
            group_id=group_id,
            query=query,
            statuses=(status,) if status else DEFAULT_STATUSES,
            patient=patient,
            unread=unread,
        ),
        cursor=cursor,
        limit=limit,
        members=False,
        with_total=False,
    )
    return ThreadList(items=[team.thread for team in found.items], next_cursor=found.next_cursor)


def search_care_teams(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    patient: str | None,
    ids: Sequence[uuid.UUID] | None,
    cursor: str | None,
    limit: int,
) -> CareTeamList:
    """The threads of the group the caller may read, in every status (archived included),
    with their circles of care (FHIR CareTeam search): the use case, policy action
    (``thread.list``, rows ``thread.read``) and audit entry of ``list_threads``."""
    asked = (("patient", patient is not None), ("_id", ids is not None))
    query = "CareTeam?" + "&".join(f"{name}=*" for name, used in asked if used)
    return _list_threads(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        where=ThreadFilter(
            group_id=group_id, query=query, statuses=THREAD_STATUSES, patient=patient, ids=ids
        ),
        cursor=cursor,
        limit=limit,
        members=True,
        with_total=True,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ThreadFilter:
    group_id: uuid.UUID
    query: str  # for the audit entry: the parameters used, never their values
    statuses: Sequence[str]
    patient: str | None = None
    ids: Sequence[uuid.UUID] | None = None
    unread: bool = False


def _list_threads(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    where: ThreadFilter,
    cursor: str | None,
    limit: int,
    members: bool,
    with_total: bool,
) -> CareTeamList:
    """A page of the threads ``where`` selects; ``with_total``: and how many there are in all
    (not for ``where.unread``)."""
    group_id = where.group_id
    access = _access("search", "E", "CareTeam", group_id=group_id, query=where.query)
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        resource = Resource(type=ResourceType.THREAD, group_id=group_id)
        authorize(actor, "thread.list", resource, context, scope)
        if groups_repository.group_by_id(session, group_id) is None:
            raise groups.not_found(ResourceType.GROUP)
        reference = patient_reference(where.patient)[1] if where.patient else None
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        plan = row_plan(actor, "thread.read", context)
        visible = groups_repository.plan_predicate(
            plan, actor, col(Thread.group_id), repository.thread_predicates(context.now)
        )
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        criteria = repository.ThreadCriteria(
            visible=visible,
            group_id=group_id,
            statuses=where.statuses,
            patient_reference=reference,
            ids=where.ids,
        )
        rows = repository.list_threads(
            session,
            where=criteria,
            user_id=actor.user_id,
            now=context.now,
            unread_only=where.unread,
            after=after,
            limit=limit + 1,
        )
        total = None
        if with_total:
            if where.unread:
                raise ValueError("an unread-only list is not counted")
            total = repository.count_threads(session, where=criteria)
        page = rows[:limit]
        display = _display(session, keyring, group_id, [r.thread for r in page])
        circles = _members(session, [r.thread.id for r in page]) if members else {}
        items = [
            CareTeam(
                thread=_thread_public(session, keyring, row, display),
                members=circles.get(row.thread.id, []),
            )
            for row in page
        ]
        scope.result_refs = [f"CareTeam/{r.thread.id}" for r in page]
        if any(not r.participant for r in page):
            # Some are visible through break-the-glass only: an emergency read.
            scope.purpose_of_use = "ETREAT"
            scope.legal_basis = EMERGENCY
            scope.reason = "break-the-glass: threads listed under a grant"
        last = page[-1].thread if len(rows) > limit else None
        return CareTeamList(
            items=items,
            next_cursor=pagination.encode_cursor(last.last_activity_at, last.id) if last else None,
            total=total,
        )


def get_thread(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
) -> ThreadPublic:
    found = _read_thread(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        thread_id=thread_id,
        members=False,
    )
    return found.thread


def get_care_team(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
) -> CareTeam:
    """The thread with its circle of care (FHIR CareTeam read): the use case, policy action
    (``thread.read``) and audit entry of ``get_thread``."""
    return _read_thread(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        thread_id=thread_id,
        members=True,
    )


def _read_thread(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
    members: bool,
) -> CareTeam:
    with audited(session, database, actor, _access("read", "R", "CareTeam")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "thread.read",
            ResourceType.THREAD,
            context=context,
            scope=scope,
        )
        public = _one_thread(session, keyring, actor, standing.thread, context.now)
        found = _members(session, [public.id]) if members else {}
        return CareTeam(thread=public, members=found.get(public.id, []))


def update_thread(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
    request: ThreadUpdate,
) -> ThreadPublic:
    """Change the title, the priority or the status (open, closed, archived)."""
    with audited(session, database, actor, _access("update", "U", "CareTeam")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "thread.update",
            ResourceType.THREAD,
            context=context,
            scope=scope,
            lock=True,
        )
        thread = standing.thread
        changes = request.model_fields_set
        for name in ("title", "priority", "status"):
            if name in changes and getattr(request, name) is None:
                raise _invalid(name, "may not be null", f"invalid-{name}")
        if request.title is not None:
            title = _text(request.title, field="title", maximum=MAX_TITLE_CHARS, code="title")
            thread.title = keyring.seal(session, aad=_title_aad(thread), plaintext=title.encode())
        if request.priority is not None:
            thread.priority = request.priority
        if request.status is not None:
            thread.status = request.status
        thread.updated_at = context.now
        thread.version += 1
        repository.add(session, thread)
        return _one_thread(session, keyring, actor, thread, context.now)


# -- participants ------------------------------------------------------------------------------


def list_participants(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    thread_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> ParticipantList:
    access = _access("search", "E", "CareTeam", query="CareTeam.participant")
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        _load(
            session,
            actor,
            thread_id,
            "participant.list",
            ResourceType.PARTICIPANT,
            context=context,
            scope=scope,
        )
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        rows = repository.list_participants(
            session, thread_id=thread_id, after=after, limit=limit + 1
        )
        page = rows[:limit]
        last = page[-1][0] if len(rows) > limit else None
        return ParticipantList(
            items=[_participant_public(p, u) for p, u in page],
            next_cursor=pagination.encode_cursor(last.added_at, last.id) if last else None,
        )


def add_participant(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    thread_id: uuid.UUID,
    request: ParticipantAdd,
) -> ParticipantPublic:
    """Add an active clinician or coordinator of the group to the circle of care (201); the
    history is shared unless ``share_history`` is false. A removed participant comes back."""
    with audited(session, database, actor, _access("update", "U", "CareTeam")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "participant.add",
            ResourceType.PARTICIPANT,
            context=context,
            scope=scope,
            lock=True,
        )
        thread = standing.thread
        if not repository.care_members_among(
            session, thread.group_id, [request.user_id], now=context.now
        ):
            raise _invalid(
                "user_id",
                "an active clinician or coordinator of the group",
                "invalid-participant",
            )
        row = repository.participant(session, thread.id, request.user_id, for_update=True)
        if row is not None and row.removed_at is None:
            raise Conflict("Already a participant of this thread.", code="already-a-participant")
        row = row or ThreadParticipant(thread_id=thread.id, user_id=request.user_id)
        row.visible_from_seq = 0 if request.share_history else thread.last_seq
        row.added_by = actor.user_id
        row.added_at = context.now
        row.removed_at = None
        row.removed_by = None
        repository.add(session, row)
        user = groups_repository.user_by_id(session, request.user_id)
        assert user is not None
        return _participant_public(row, user)


def remove_participant(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    thread_id: uuid.UUID,
    user_id: uuid.UUID,
) -> None:
    """Remove a participant (204): they lose access at their next request."""
    with audited(session, database, actor, _access("update", "U", "CareTeam")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "participant.remove",
            ResourceType.PARTICIPANT,
            context=context,
            scope=scope,
            lock=True,
        )
        row = repository.participant(session, standing.thread.id, user_id, for_update=True)
        if row is None or row.removed_at is not None:
            raise NotFound("No such participant in this thread.", code="not-a-participant")
        row.removed_at = context.now
        row.removed_by = actor.user_id
        repository.add(session, row)


# -- messages ----------------------------------------------------------------------------------


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


# -- attachments -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Upload:
    """An attachment as the edge received it (a multipart form): the file's bytes, held in
    memory only (never spooled to disk in clear), at most the limit plus one byte."""

    data: bytes
    filename: str | None = None
    document_type: str | None = None
    body: str = ""
    client_id: str | None = None
    too_large: bool = False
    problem: str | None = None  # the form was not as expected (which field)


def upload_attachment(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    store: blobs.BlobStore,
    thread_id: uuid.UUID,
    upload: Upload,
) -> Posted:
    """Post a document in the thread (201): a message carrying it (``body`` is its caption).
    The type is detected from the bytes (PDF, JPEG, PNG, HEIC; DICOM if allowed); the content
    is sealed chunk by chunk into the blob store, which follows the transaction."""
    access = _access("create", "C", "DocumentReference")
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "attachment.upload",
            ResourceType.ATTACHMENT,
            context=context,
            scope=scope,
            lock=True,
        )
        assert actor.user_id is not None
        thread = standing.thread
        if upload.problem is not None:
            raise _invalid(upload.problem, "a multipart form with one file", "invalid-upload")
        if upload.document_type not in DOCUMENT_TYPES:
            raise _invalid("document_type", f"one of {', '.join(DOCUMENT_TYPES)}", "invalid-type")
        limit = settings.max_attachment_bytes
        if upload.too_large or len(upload.data) > limit:
            raise PayloadTooLarge(
                f"An attachment is at most {limit} bytes.",
                code="attachment-too-large",
                extra={"limit": limit},
            )
        if not upload.data:
            raise _invalid("file", "may not be empty", "empty-attachment")
        media_type = content.detect(
            upload.data[: content.SNIFF_BYTES], allow_dicom=settings.attachments_allow_dicom
        )
        if media_type is None:
            raise UnsupportedMediaType(
                "Only PDF, JPEG, PNG and HEIC files (and DICOM where allowed) are accepted.",
                code="type-not-allowed",
            )
        caption = upload.body
        if len(caption) > MAX_BODY_CHARS:
            raise _invalid("body", f"at most {MAX_BODY_CHARS} characters", "body-too-long")
        attachment_id = uuid.uuid4()
        client_id = _client_id(upload.client_id or f"attachment-{attachment_id}")
        existing = repository.message_by_client_id(session, thread.id, client_id)
        if existing is not None:
            scope.resource_id = str(existing.id)
            return _replay(session, keyring, thread, actor, existing)
        filename = _clean_filename(upload.filename) or ""
        message = Message(
            thread_id=thread.id,
            seq=0,
            author_id=actor.user_id,
            client_id=client_id,
            body=b"",
            created_at=context.now,
        )
        message.body = keyring.seal(
            session,
            aad=_message_aad(thread, message.id, actor.user_id),
            plaintext=caption.encode(),
        )
        aad = _attachment_aad(thread, attachment_id, actor.user_id)
        attachment = Attachment(
            id=attachment_id,
            thread_id=thread.id,
            message_id=message.id,
            uploaded_by=actor.user_id,
            document_type=upload.document_type,
            content_type=media_type,
            size=len(upload.data),
            filename=keyring.seal(session, aad=aad, plaintext=filename.encode()),
            blob_key=str(attachment_id),
            chunk_size=ATTACHMENT_CHUNK_BYTES,
            created_at=context.now,
        )
        view = memoryview(upload.data)
        pieces = (
            bytes(view[i : i + ATTACHMENT_CHUNK_BYTES])
            for i in range(0, len(view), ATTACHMENT_CHUNK_BYTES)
        )
        blobs.delete_on_rollback(session, store, attachment.blob_key)
        store.put(
            attachment.blob_key,
            keyring.seal_chunks(
                session, aad=aad, plaintext=pieces, chunk_size=ATTACHMENT_CHUNK_BYTES
            ),
        )
        if not _insert_message(session, thread, message, attachment, now=context.now):
            store.delete(attachment.blob_key)
            existing = repository.message_by_client_id(session, thread.id, client_id)
            if existing is None:
                raise InternalError("The attachment could not be stored.")
            scope.resource_id = str(existing.id)
            return _replay(session, keyring, thread, actor, existing)
        scope.resource_id = str(attachment.id)
        names = {actor.user_id: standing.caller_name or ""}
        public = _message_public(
            session, keyring, thread, message, attachment=attachment, names=names, body=caption
        )
        return Posted(public, True)


@dataclass(frozen=True, slots=True)
class Download:
    content_type: str
    filename: str
    size: int
    chunks: Iterator[bytes]


def download_attachment(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    store: blobs.BlobStore,
    attachment_id: uuid.UUID,
) -> Download:
    """The decrypted content, streamed. The access is recorded (and the key confirmed, by
    opening the file name) in the request's transaction; the chunks are then opened one by
    one, each in a short transaction of its own, as the client reads them."""
    access = _access("read", "R", "DocumentReference", resource_id=str(attachment_id))
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        found = repository.attachment_with_message(session, attachment_id)
        if found is None:
            raise not_found(ResourceType.ATTACHMENT)
        attachment, message = found
        standing = _standing(session, actor, attachment.thread_id, context.now)
        thread = standing.thread
        _authorize(
            actor,
            "attachment.read",
            standing,
            ResourceType.ATTACHMENT,
            context=context,
            scope=scope,
        )
        if message.seq <= standing.history_from:
            raise not_found(ResourceType.ATTACHMENT)
        aad = _attachment_aad(thread, attachment.id, attachment.uploaded_by)
        filename = keyring.open(session, aad=aad, envelope=attachment.filename).decode()
        try:
            stream = store.open(attachment.blob_key)
        except FileNotFoundError:
            log.error("attachment content missing", extra={"attachment": str(attachment.id)})
            raise InternalError(
                "The attachment's content is missing.", code="attachment-missing"
            ) from None
        extension = content.EXTENSIONS.get(attachment.content_type, "")
        return Download(
            content_type=attachment.content_type,
            filename=filename or f"{attachment.document_type}{extension}",
            size=attachment.size,
            chunks=_opened(database, keyring, aad, stream, attachment.chunk_size),
        )


def _opened(
    database: Database, keyring: Keyring, aad: AssociatedData, stream: BinaryIO, chunk_size: int
) -> Iterator[bytes]:
    try:
        with database.session() as reader:
            envelopes = read_sealed_chunks(stream, chunk_size=chunk_size)
            for plaintext in keyring.open_chunks(reader, aad=aad, envelopes=envelopes):
                # End the short transaction the key lookup began before the client reads on.
                reader.rollback()
                yield plaintext
    finally:
        stream.close()


# -- tasks -------------------------------------------------------------------------------------


def _task_public(session: Session, keyring: Keyring, thread: Thread, task: Task) -> TaskPublic:
    description = keyring.open(session, aad=_task_aad(thread, task.id), envelope=task.description)
    return TaskPublic(
        id=task.id,
        thread_id=task.thread_id,
        group_id=thread.group_id,
        description=description.decode(),
        assignee=task.assignee_id,
        due_date=task.due_date,
        status=task.status,
        created_by=task.created_by,
        created_at=task.created_at,
        updated_at=task.updated_at,
        version=task.version,
        patient=thread.patient_reference,
    )


def _check_assignee(session: Session, thread: Thread, assignee: uuid.UUID | None) -> None:
    if assignee is not None and assignee not in repository.current_participant_ids(
        session, thread.id
    ):
        raise _invalid("assignee", "a participant of the thread", "assignee-not-participant")


def list_tasks(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> TaskList:
    access = _access("search", "E", "Task", query="Task?thread")
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session, actor, thread_id, "task.list", ResourceType.TASK, context=context, scope=scope
        )
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        rows = repository.list_tasks(session, thread_id=thread_id, after=after, limit=limit + 1)
        page = rows[:limit]
        scope.result_refs = [f"Task/{t.id}" for t in page]
        last = page[-1] if len(rows) > limit else None
        return TaskList(
            items=[_task_public(session, keyring, standing.thread, t) for t in page],
            next_cursor=pagination.encode_cursor(last.created_at, last.id) if last else None,
        )


def create_task(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    thread_id: uuid.UUID,
    request: TaskCreate,
) -> TaskPublic:
    with audited(session, database, actor, _access("create", "C", "Task")) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "task.create",
            ResourceType.TASK,
            context=context,
            scope=scope,
        )
        assert actor.user_id is not None
        thread = standing.thread
        description = _text(
            request.description, field="description", maximum=MAX_TASK_CHARS, code="description"
        )
        _check_assignee(session, thread, request.assignee)
        task = Task(
            thread_id=thread.id,
            description=b"",
            assignee_id=request.assignee,
            due_date=request.due_date,
            created_by=actor.user_id,
            created_at=context.now,
            updated_at=context.now,
        )
        task.description = keyring.seal(
            session, aad=_task_aad(thread, task.id), plaintext=description.encode()
        )
        repository.add(session, task)
        repository.touch(session, thread.id, context.now)
        scope.resource_id = str(task.id)
        return _task_public(session, keyring, thread, task)


def _task_and_standing(
    session: Session,
    actor: Actor,
    task_id: uuid.UUID,
    action: str,
    *,
    context: Context,
    scope: AuditScope,
    for_update: bool = False,
) -> tuple[Task, ThreadAccess]:
    scope.resource_id = str(task_id)
    task = repository.task_by_id(session, task_id, for_update=for_update)
    if task is None:
        raise not_found(ResourceType.TASK)
    standing = _standing(session, actor, task.thread_id, context.now)
    _authorize(actor, action, standing, ResourceType.TASK, context=context, scope=scope)
    return task, standing


def get_task(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    task_id: uuid.UUID,
) -> TaskPublic:
    with audited(session, database, actor, _access("read", "R", "Task")) as scope:
        context = groups.policy_context(settings)
        task, standing = _task_and_standing(
            session, actor, task_id, "task.read", context=context, scope=scope
        )
        return _task_public(session, keyring, standing.thread, task)


def update_task(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    task_id: uuid.UUID,
    request: TaskUpdate,
    expected_version: int | None = None,
) -> TaskPublic:
    """Change the description, assignee (a participant, or null), due date, or status along a
    valid transition (requested -> accepted | in-progress | cancelled, accepted ->
    in-progress | cancelled, in-progress -> completed | cancelled). ``expected_version`` (the
    FHIR ``If-Match``): 412 unless it is the current version."""
    with audited(session, database, actor, _access("update", "U", "Task")) as scope:
        context = groups.policy_context(settings)
        task, standing = _task_and_standing(
            session, actor, task_id, "task.update", context=context, scope=scope, for_update=True
        )
        thread = standing.thread
        if expected_version is not None and expected_version != task.version:
            raise patients.VersionConflict(
                "The task was changed since that version.",
                extra={"current_version": task.version},
            )
        changes = request.model_fields_set
        if "description" in changes:
            if request.description is None:
                raise _invalid("description", "may not be null", "empty-description")
            description = _text(
                request.description,
                field="description",
                maximum=MAX_TASK_CHARS,
                code="description",
            )
            task.description = keyring.seal(
                session, aad=_task_aad(thread, task.id), plaintext=description.encode()
            )
        if "assignee" in changes:
            _check_assignee(session, thread, request.assignee)
            task.assignee_id = request.assignee
        if "due_date" in changes:
            task.due_date = request.due_date
        if "status" in changes:
            if request.status is None:
                raise _invalid("status", "may not be null", "invalid-status")
            if request.status != task.status:
                if request.status not in TASK_TRANSITIONS[task.status]:
                    raise Conflict(
                        f"A {task.status} task cannot become {request.status}.",
                        code="invalid-transition",
                        extra={"allowed": sorted(TASK_TRANSITIONS[task.status])},
                    )
                task.status = request.status
        task.updated_at = context.now
        task.version += 1
        repository.add(session, task)
        repository.touch(session, thread.id, context.now)
        return _task_public(session, keyring, thread, task)


def search_tasks(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    owner: uuid.UUID | None,
    statuses: Sequence[str] | None,
    patient: str | None,
    cursor: str | None,
    limit: int,
    thread_id: uuid.UUID | None = None,
) -> TaskList:
    """The tasks of the group's threads the caller may read (FHIR Task search), by assignee,
    statuses, patient and thread, oldest first, with how many match (``total``): allowed as
    listing the threads (``thread.list``), rows filtered in SQL by the row plan of
    ``task.read``."""
    asked = (
        ("owner", owner is not None),
        ("status", statuses is not None),
        ("patient", patient is not None),
        ("focus", thread_id is not None),
    )
    query = "Task?" + "&".join(f"{name}=*" for name, used in asked if used)
    access = _access("search", "E", "Task", group_id=group_id, query=query)
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        _group_search(actor, group_id, session, context, scope)
        reference = None
        if patient is not None:
            scope.patient_id, reference = patient_reference(patient)
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        criteria = repository.TaskCriteria(
            visible=_visible(actor, "task.read", context),
            group_id=group_id,
            owner=owner,
            statuses=statuses,
            patient_reference=reference,
            thread_id=thread_id,
        )
        rows = repository.search_tasks(session, where=criteria, after=after, limit=limit + 1)
        total = repository.count_tasks(session, where=criteria)
        page = rows[:limit]
        scope.result_refs = [f"Task/{t.id}" for t, _ in page]
        last = page[-1][0] if len(rows) > limit else None
        return TaskList(
            items=[_task_public(session, keyring, thread, task) for task, thread in page],
            next_cursor=pagination.encode_cursor(last.created_at, last.id) if last else None,
            total=total,
        )


def my_tasks(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    cursor: str | None,
    limit: int,
) -> TaskList:
    """What needs me: open tasks assigned to the caller, across their care groups, in threads
    they may still read (the row plan of ``task.read``, in SQL); soonest due first."""
    access = _access("search", "E", "Task", query="Task?owner=me&status=open")
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        authorize(actor, "task.list_mine", Resource(type=ResourceType.TASK), context, scope)
        assert actor.user_id is not None
        after = pagination.decode_cursor(cursor, str, dt.datetime, uuid.UUID) if cursor else None
        key = None
        if after is not None:
            try:
                key = (dt.date.fromisoformat(after[0]), after[1], after[2])
            except ValueError:
                raise _bad_cursor() from None
        visible = groups_repository.plan_predicate(
            row_plan(actor, "task.read", context),
            actor,
            col(Thread.group_id),
            repository.thread_predicates(context.now),
        )
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        rows = repository.my_tasks(
            session, visible=visible, user_id=actor.user_id, after=key, limit=limit + 1
        )
        page = rows[:limit]
        scope.result_refs = [f"Task/{t.id}" for t, _ in page]
        last = page[-1][0] if len(rows) > limit else None
        next_cursor = None
        if last is not None:
            due = last.due_date or repository.NO_DUE_DATE
            next_cursor = pagination.encode_cursor(due.isoformat(), last.created_at, last.id)
        return TaskList(
            items=[_task_public(session, keyring, thread, task) for task, thread in page],
            next_cursor=next_cursor,
        )


# -- break-the-glass ---------------------------------------------------------------------------


def break_glass(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    thread_id: uuid.UUID,
    request: BreakGlassCreate,
) -> BreakGlassPublic:
    """Emergency read access to a thread of the group for a clinician who is not a
    participant: a stated reason (≥ 20 characters), a recent authentication (step-up),
    ``HDS_BREAK_GLASS_MINUTES`` (60) of read-only access, every read recorded as ETREAT; the
    group's coordinators are notified. Never across groups, never over an opposition."""
    access = dataclasses.replace(_access("break-glass", "E", "CareTeam"), purpose_of_use="ETREAT")
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        standing = _load(
            session,
            actor,
            thread_id,
            "grant.create",
            ResourceType.GRANT,
            context=context,
            scope=scope,
        )
        assert actor.user_id is not None
        reason = " ".join(request.reason.split())
        if len(reason) < MIN_REASON_CHARS:
            raise _invalid("reason", f"at least {MIN_REASON_CHARS} characters", "reason-too-short")
        if len(reason) > MAX_REASON_CHARS:
            raise _invalid("reason", f"at most {MAX_REASON_CHARS} characters", "reason-too-long")
        thread = standing.thread
        grant = BreakGlassGrant(
            thread_id=thread.id,
            user_id=actor.user_id,
            created_at=context.now,
            expires_at=context.now + dt.timedelta(minutes=settings.break_glass_minutes),
        )
        repository.add(session, grant)
        coordinators = repository.active_coordinator_ids(session, thread.group_id, now=context.now)
        repository.add(
            session,
            *(
                NotificationEvent(
                    group_id=thread.group_id,
                    recipient_id=coordinator,
                    kind="break-glass",
                    thread_id=thread.id,
                    subject_id=grant.id,
                    actor_id=actor.user_id,
                    created_at=context.now,
                )
                for coordinator in coordinators
            ),
        )
        scope.purpose_of_use = "ETREAT"
        scope.reason = reason
        scope.result_refs = [f"urn:uuid:{grant.id}"]
        return BreakGlassPublic(
            id=grant.id,
            thread_id=thread.id,
            user_id=actor.user_id,
            created_at=grant.created_at,
            expires_at=grant.expires_at,
        )


# -- live events -------------------------------------------------------------------------------

EVENTS_QUERY = "CareTeam?_stream=events"
#: What a browser waits before reconnecting once a stream ended (the SSE ``retry:`` field).
EVENTS_RETRY_MS = 2000

Counters = dict[uuid.UUID, tuple[uuid.UUID, int, int]]  # thread -> (group, last seq, read seq)


@dataclass(frozen=True, slots=True)
class EventStream:
    """The live stream of one caller, authorized and recorded when it was opened. Each poll
    opens a short session of its own (never the request's, never across the stream), asks the
    policy's row plan of ``thread.read`` again (a participation or grant that ended stops the
    events of that thread), and reads ids and counters only."""

    database: Database
    actor: Actor
    settings: Settings

    def poll(self, known: Counters | None) -> tuple[Counters, list[ThreadEvent]]:
        """The counters now, and an event for each thread whose counters changed since
        ``known`` (none on the first poll: it is the baseline)."""
        assert self.actor.user_id is not None
        context = groups.policy_context(self.settings)
        visible = groups_repository.plan_predicate(
            row_plan(self.actor, "thread.read", context),
            self.actor,
            col(Thread.group_id),
            repository.thread_predicates(context.now),
        )
        with self.database.session() as session:
            rows = repository.thread_counters(
                session, visible=visible, user_id=self.actor.user_id, statuses=DEFAULT_STATUSES
            )
            now: Counters = {tid: (gid, last, read) for tid, gid, last, read in rows}
            changed = (
                []
                if known is None
                else sorted(tid for tid, counters in now.items() if known.get(tid) != counters)
            )
            unread = repository.unread_counts(session, changed, self.actor.user_id, context.now)
        events = [
            ThreadEvent(
                thread=tid,
                group=now[tid][0],
                last_seq=now[tid][1],
                read_seq=now[tid][2],
                unread=unread.get(tid, 0),
            )
            for tid in changed
        ]
        return now, events

    async def events(self) -> AsyncIterator[str]:
        """Server-Sent Events: ``ready`` once the baseline is taken (the client then catches
        up through the API), a ``thread`` event per change, a comment every
        ``HDS_EVENTS_HEARTBEAT_SECONDS``, and the end after ``HDS_EVENTS_STREAM_SECONDS``."""
        settings = self.settings
        started = time.monotonic()
        known, _ = await anyio.to_thread.run_sync(self.poll, None)
        yield f"retry: {EVENTS_RETRY_MS}\nevent: ready\ndata: {{}}\n\n"
        said = time.monotonic()
        while time.monotonic() - started < settings.events_stream_seconds:
            await anyio.sleep(settings.events_poll_seconds)
            known, events = await anyio.to_thread.run_sync(self.poll, known)
            for event in events:
                yield f"event: thread\ndata: {event.model_dump_json()}\n\n"
                said = time.monotonic()
            if time.monotonic() - said >= settings.events_heartbeat_seconds:
                yield ": alive\n\n"
                said = time.monotonic()


def open_events(
    *, session: Session, database: Database, actor: Actor, settings: Settings
) -> EventStream:
    """Open the caller's live stream of thread counters: allowed when ``thread.list`` is
    allowed in one of their care groups at least; one audit entry for the opening (the
    messages are then read through the messages API, each read recorded)."""
    access = _access("search", "E", "CareTeam", query=EVENTS_QUERY)
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        decisions = {
            group_id: decide(
                actor, "thread.list", Resource(type=ResourceType.THREAD, group_id=group_id), context
            )
            for group_id in sorted(actor.memberships)
        }
        allowed = [group_id for group_id, decision in decisions.items() if decision.allowed]
        if actor.user_id is not None and not decisions:
            scope.outcome_desc = "policy:not-member"
            raise Forbidden("You take part in no care group.", code="forbidden-not-member")
        # The refusal of the first group when none allows it (or 401 when unauthenticated);
        # else the legal basis of the first that does.
        first = allowed[0] if allowed else next(iter(decisions), None)
        authorize(
            actor, "thread.list", Resource(type=ResourceType.THREAD, group_id=first), context, scope
        )
        if len(allowed) == 1:
            scope.group_id = allowed[0]
        return EventStream(database=database, actor=actor, settings=settings)


# -- demo --------------------------------------------------------------------------------------

# A small PDF (one page, "Compte rendu de démonstration"), valid enough for any viewer.
DEMO_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R"
    b"/Resources<</Font<</F1 5 0 R>>>>>>endobj\n"
    b"4 0 obj<</Length 62>>stream\nBT /F1 18 Tf 72 760 Td (Compte rendu de demonstration) Tj ET\n"
    b"endstream endobj\n5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


@dataclass(frozen=True)
class DemoThread:
    patient: int  # index in the demo patients
    title: str
    priority: str
    participants: tuple[str, ...]  # demo user keys besides the doctor, who opens it
    messages: tuple[tuple[str, str], ...]  # (author key, body)
    task: tuple[str, str, int] | None  # (assignee key, description, due in days)
    attachment: str | None  # document type of the demo PDF


DEMO_THREADS = (
    DemoThread(
        patient=0,
        title="Retour à domicile après prothèse de hanche",
        priority="urgent",
        participants=("nurse", "pharmacist"),
        messages=(
            ("doctor", "Sortie prévue jeudi. Pansement à J+2, anticoagulant pendant 35 jours."),
            ("nurse", "Je passe vendredi matin pour le premier pansement."),
            ("pharmacist", "Ordonnance reçue, le traitement sera prêt jeudi après-midi."),
        ),
        task=("nurse", "Premier pansement à domicile et contrôle de la cicatrice", 2),
        attachment="report",
    ),
    DemoThread(
        patient=1,
        title="Adaptation du traitement antihypertenseur",
        priority="routine",
        participants=("pharmacist",),
        messages=(
            ("doctor", "Tension encore à 15/9 malgré le traitement : j'augmente la dose."),
            ("pharmacist", "Noté, je vérifie les interactions avec son traitement actuel."),
        ),
        task=("pharmacist", "Vérifier les interactions et rappeler le patient", 5),
        attachment=None,
    ),
)


def _user(actor: Actor) -> uuid.UUID:
    assert actor.user_id is not None
    return actor.user_id


def seed_demo_threads(
    *,
    session: Session,
    database: Database,
    settings: Settings,
    keyring: Keyring,
    store: blobs.BlobStore,
    group_id: uuid.UUID,
    patient_ids: Sequence[uuid.UUID],
    members: dict[str, Actor],
) -> list[uuid.UUID]:
    """The demo group's threads, with messages, a task and an attachment, each written through
    its use case by the demo member who would write it (as the audit log records it).
    Idempotent: a demo thread whose first message is there is left alone. ``members`` maps the
    demo user keys (doctor, nurse, pharmacist) to their actors."""
    ids = []
    for n, demo in enumerate(DEMO_THREADS):
        first = f"demo-{n}-0"
        existing = repository.thread_of_client_id(session, group_id, first)
        if existing is not None:
            ids.append(existing)
            continue
        opened = open_thread(
            session=session,
            database=database,
            settings=settings,
            actor=members["doctor"],
            keyring=keyring,
            group_id=group_id,
            request=ThreadCreate.model_validate(
                {
                    "patient": f"Patient/{patient_ids[demo.patient]}",
                    "title": demo.title,
                    "participants": [str(_user(members[key])) for key in demo.participants],
                    "priority": demo.priority,
                }
            ),
        )
        for i, (author, body) in enumerate(demo.messages):
            post_message(
                session=session,
                database=database,
                settings=settings,
                actor=members[author],
                keyring=keyring,
                thread_id=opened.id,
                request=MessageCreate(body=body, client_id=f"demo-{n}-{i}"),
            )
        if demo.task is not None:
            assignee, description, days = demo.task
            create_task(
                session=session,
                database=database,
                settings=settings,
                actor=members["doctor"],
                keyring=keyring,
                thread_id=opened.id,
                request=TaskCreate.model_validate(
                    {
                        "description": description,
                        "assignee": str(_user(members[assignee])),
                        "due_date": (utcnow() + dt.timedelta(days=days)).date().isoformat(),
                    }
                ),
            )
        if demo.attachment is not None:
            upload_attachment(
                session=session,
                database=database,
                settings=settings,
                actor=members["doctor"],
                keyring=keyring,
                store=store,
                thread_id=opened.id,
                upload=Upload(
                    data=DEMO_PDF,
                    filename="compte-rendu-demo.pdf",
                    document_type=demo.attachment,
                    body="Compte rendu opératoire",
                    client_id=f"demo-{n}-attachment",
                ),
            )
        ids.append(opened.id)
    return ids
