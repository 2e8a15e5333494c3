"""Request and response models of case threads, participants, messages, attachments, tasks and
break-the-glass grants.

Requests are strict: unknown fields refused, JSON types not coerced. The content rules (lengths,
client id format, reason length, participants) are checked by the service, inside the audited
use case, so a refused attempt is an audit entry too; here only the shapes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt

Priority = Literal["routine", "urgent"]
ThreadStatus = Literal["open", "closed", "archived"]
TaskStatus = Literal["requested", "accepted", "in-progress", "completed", "cancelled"]
DocumentType = Literal[
    "report", "prescription", "photo", "ecg", "imaging", "lab-result", "letter", "other"
]
Access = Literal["participant", "break-glass", "coordinator"]


def _json_string(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be a JSON string")
    return value


JsonStr = Annotated[str, BeforeValidator(_json_string)]
JsonUuid = Annotated[uuid.UUID, BeforeValidator(_json_string)]
JsonDate = Annotated[dt.date, BeforeValidator(_json_string)]


class StrictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- threads -----------------------------------------------------------------------------------


class ThreadCreate(StrictRequest):
    """Open a thread about a patient: ``"Patient/{id}"`` (a patient of the group) or the
    absolute URL of a Patient on an external FHIR server (stored, never fetched)."""

    patient: JsonStr = Field(examples=["Patient/8d5a4c1e-0f7b-4c55-9d1e-1b9b0f1a2c3d"])
    title: JsonStr = Field(description="1 to 200 characters; encrypted at rest")
    participants: list[JsonUuid] = Field(
        default_factory=list, description="user ids (active clinicians or coordinators)"
    )
    priority: Annotated[Priority, BeforeValidator(_json_string)] = "routine"


class ThreadUpdate(StrictRequest):
    title: JsonStr | None = None
    priority: Annotated[Priority, BeforeValidator(_json_string)] | None = None
    status: Annotated[ThreadStatus, BeforeValidator(_json_string)] | None = None


class ThreadPublic(BaseModel):
    id: uuid.UUID
    group_id: uuid.UUID
    patient: str = Field(description="FHIR reference: Patient/{id} or an absolute URL")
    patient_display: str | None = Field(description="the patient's name (local patients)")
    title: str
    priority: Priority
    status: ThreadStatus
    created_by: uuid.UUID
    created_at: dt.datetime
    last_activity_at: dt.datetime
    last_seq: int
    unread: int = Field(description="messages of others after my read position")
    read_seq: int
    access: Access = Field(description="why the caller sees it")
    break_glass_expires_at: dt.datetime | None = None


class ThreadList(BaseModel):
    items: list[ThreadPublic]
    next_cursor: str | None


# -- participants ------------------------------------------------------------------------------


class ParticipantAdd(StrictRequest):
    user_id: JsonUuid
    share_history: StrictBool = Field(
        default=True, description="false: the newcomer sees only the messages that follow"
    )


class ParticipantPublic(BaseModel):
    user_id: uuid.UUID
    display_name: str
    profession: str | None
    added_at: dt.datetime
    added_by: uuid.UUID | None
    shares_history: bool


class ParticipantList(BaseModel):
    items: list[ParticipantPublic]
    next_cursor: str | None


# -- messages ----------------------------------------------------------------------------------


class MessageCreate(StrictRequest):
    body: JsonStr = Field(description="1 to 20,000 characters; encrypted at rest")
    client_id: JsonStr = Field(
        description="1 to 64 of [A-Za-z0-9._:-], e.g. a UUID made by the client: posting the "
        "same client_id again returns the same message"
    )
    corrects: JsonUuid | None = Field(default=None, description="id of the message corrected")


class AttachmentPublic(BaseModel):
    id: uuid.UUID
    document_type: DocumentType
    content_type: str
    size: int
    filename: str | None


class MessagePublic(BaseModel):
    id: uuid.UUID
    thread_id: uuid.UUID
    seq: int
    author: uuid.UUID
    author_name: str | None
    created_at: dt.datetime
    body: str
    client_id: str
    corrects: uuid.UUID | None
    attachment: AttachmentPublic | None = None
    patient: str | None = Field(default=None, description="the thread's patient (reference)")


class MessageList(BaseModel):
    items: list[MessagePublic]
    next_cursor: str | None = Field(description="the seq to pass as after= (or cursor=)")
    total: int | None = Field(default=None, description="the matching messages (FHIR searches)")


class ThreadEvent(BaseModel):
    """One event of the live stream (GET /api/v1/me/events): ids and counters only, never
    content; the client fetches what changed through the messages API."""

    thread: uuid.UUID
    group: uuid.UUID
    last_seq: int
    read_seq: int
    unread: int


class ReadMark(StrictRequest):
    seq: StrictInt = Field(description="read up to this seq (0 to the thread's last seq)")


class ReadState(BaseModel):
    thread_id: uuid.UUID
    read_seq: int
    last_seq: int
    unread: int


# -- tasks -------------------------------------------------------------------------------------


class TaskCreate(StrictRequest):
    description: JsonStr = Field(description="1 to 2,000 characters; encrypted at rest")
    assignee: JsonUuid | None = Field(default=None, description="a participant of the thread")
    due_date: JsonDate | None = None


class TaskUpdate(StrictRequest):
    description: JsonStr | None = None
    assignee: JsonUuid | None = None
    due_date: JsonDate | None = None
    status: Annotated[TaskStatus, BeforeValidator(_json_string)] | None = None


class TaskPublic(BaseModel):
    id: uuid.UUID
    thread_id: uuid.UUID
    group_id: uuid.UUID
    description: str
    assignee: uuid.UUID | None
    due_date: dt.date | None
    status: TaskStatus
    created_by: uuid.UUID
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
    patient: str | None = Field(default=None, description="the thread's patient (reference)")


class TaskList(BaseModel):
    items: list[TaskPublic]
    next_cursor: str | None
    total: int | None = Field(default=None, description="the matching tasks (FHIR searches)")


# -- break-the-glass ---------------------------------------------------------------------------


class BreakGlassCreate(StrictRequest):
    reason: JsonStr = Field(description="why: at least 20 characters, at most 1,000")


class BreakGlassPublic(BaseModel):
    id: uuid.UUID
    thread_id: uuid.UUID
    user_id: uuid.UUID
    created_at: dt.datetime
    expires_at: dt.datetime
