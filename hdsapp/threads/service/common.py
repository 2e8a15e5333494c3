"""What the use cases of case threads share: limits, the key store they use, associated data,
input checks, and the thread as the policy sees it."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

from sqlmodel import Session

from hdsapp.core.accesslog import Access, AuditScope
from hdsapp.core.actor import Actor
from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.chunks import MAX_CHUNK_SIZE
from hdsapp.core.errors import (
    NotFound,
    Unprocessable,
)
from hdsapp.groups import service as groups
from hdsapp.models.break_glass_grant import BreakGlassGrant
from hdsapp.models.thread import Thread
from hdsapp.models.thread_participant import ThreadParticipant
from hdsapp.patients import service as patients
from hdsapp.policy import Context, Decision, Resource, ResourceType, decide
from hdsapp.threads import repository

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
