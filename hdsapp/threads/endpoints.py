"""Case threads (API.md, "Case threads"). Thin: each route declares its policy action and hands
over to the service."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from hdsapp.dependencies import (
    ActorDep,
    DatabaseDep,
    KeyringDep,
    SessionDep,
    SettingsDep,
)
from hdsapp.groups.endpoints import declares
from hdsapp.groups.pagination import DEFAULT_LIMIT, MAX_LIMIT
from hdsapp.threads import service
from hdsapp.threads.blobs import BlobStore, FilesystemBlobStore
from hdsapp.threads.multipart import read_upload
from hdsapp.threads.schemas import (
    BreakGlassCreate,
    BreakGlassPublic,
    MessageCreate,
    MessageList,
    MessagePublic,
    ParticipantAdd,
    ParticipantList,
    ParticipantPublic,
    ReadMark,
    ReadState,
    TaskCreate,
    TaskList,
    TaskPublic,
    TaskUpdate,
    ThreadCreate,
    ThreadList,
    ThreadPublic,
    ThreadStatus,
    ThreadUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["case threads"])

Cursor = Annotated[str | None, Query(max_length=512)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def get_blob_store(request: Request) -> BlobStore:
    """The app's blob store of attachments (``app.state.blob_store``): the filesystem under
    ``HDS_BLOB_DIR`` (``HDS_DATA_DIR/blobs``) unless one was set."""
    store: BlobStore | None = getattr(request.app.state, "blob_store", None)
    if store is None:
        store = FilesystemBlobStore(request.app.state.settings.blob_path)
        request.app.state.blob_store = store
    return store


BlobStoreDep = Annotated[BlobStore, Depends(get_blob_store)]


# -- threads -----------------------------------------------------------------------------------


@router.get(
    "/groups/{gid}/threads", response_model=ThreadList, openapi_extra=declares("thread.list")
)
def list_threads(
    *,
    gid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
    status: Annotated[ThreadStatus | None, Query()] = None,
    patient: Annotated[str | None, Query(max_length=2048)] = None,
    unread: bool = False,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> ThreadList:
    return service.list_threads(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        group_id=gid,
        status=status,
        patient=patient,
        unread=unread,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "/groups/{gid}/threads",
    status_code=201,
    response_model=ThreadPublic,
    openapi_extra=declares("thread.create"),
    summary="Open a thread about a patient (the creator is a participant)",
)
def open_thread(
    *,
    gid: uuid.UUID,
    body: ThreadCreate,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> ThreadPublic:
    return service.open_thread(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        group_id=gid,
        request=body,
    )


@router.get("/threads/{tid}", response_model=ThreadPublic, openapi_extra=declares("thread.read"))
def get_thread(
    *,
    tid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> ThreadPublic:
    return service.get_thread(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        thread_id=tid,
    )


@router.patch(
    "/threads/{tid}", response_model=ThreadPublic, openapi_extra=declares("thread.update")
)
def update_thread(
    *,
    tid: uuid.UUID,
    body: ThreadUpdate,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> ThreadPublic:
    return service.update_thread(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        thread_id=tid,
        request=body,
    )


# -- participants ------------------------------------------------------------------------------


@router.get(
    "/threads/{tid}/participants",
    response_model=ParticipantList,
    openapi_extra=declares("participant.list"),
)
def list_participants(
    *,
    tid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    cursor: Cursor = None,
    limit: Limit = MAX_LIMIT,
) -> ParticipantList:
    return service.list_participants(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        thread_id=tid,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "/threads/{tid}/participants",
    status_code=201,
    response_model=ParticipantPublic,
    openapi_extra=declares("participant.add"),
)
def add_participant(
    *,
    tid: uuid.UUID,
    body: ParticipantAdd,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> ParticipantPublic:
    return service.add_participant(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        thread_id=tid,
        request=body,
    )


@router.delete(
    "/threads/{tid}/participants/{uid}",
    status_code=204,
    openapi_extra=declares("participant.remove"),
)
def remove_participant(
    *,
    tid: uuid.UUID,
    uid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> Response:
    service.remove_participant(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        thread_id=tid,
        user_id=uid,
    )
    return Response(status_code=204)


# -- messages ----------------------------------------------------------------------------------


@router.get(
    "/threads/{tid}/messages", response_model=MessageList, openapi_extra=declares("message.list")
)
def list_messages(
    *,
    tid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> MessageList:
    return service.list_messages(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        thread_id=tid,
        after=after,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "/threads/{tid}/messages",
    status_code=201,
    response_model=MessagePublic,
    openapi_extra=declares("message.post"),
    summary="Post a message; the same client_id again returns the same message (200)",
)
def post_message(
    *,
    tid: uuid.UUID,
    body: MessageCreate,
    response: Response,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> MessagePublic:
    posted = service.post_message(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        thread_id=tid,
        request=body,
    )
    if not posted.created:
        response.status_code = 200
    return posted.message


@router.post(
    "/threads/{tid}/read", response_model=ReadState, openapi_extra=declares("message.mark_read")
)
def mark_read(
    *,
    tid: uuid.UUID,
    body: ReadMark,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> ReadState:
    return service.mark_read(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        thread_id=tid,
        seq=body.seq,
    )


# -- attachments -------------------------------------------------------------------------------

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "document_type"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "document_type": {
                            "type": "string",
                            "enum": [
                                "report",
                                "prescription",
                                "photo",
                                "ecg",
                                "imaging",
                                "lab-result",
                                "letter",
                                "other",
                            ],
                        },
                        "body": {"type": "string", "description": "caption"},
                        "client_id": {"type": "string"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/threads/{tid}/attachments",
    status_code=201,
    response_model=MessagePublic,
    openapi_extra={**declares("attachment.upload"), **UPLOAD_BODY},
    summary="Post a document (multipart: file, document_type, body, client_id)",
)
async def upload_attachment(
    *,
    tid: uuid.UUID,
    request: Request,
    response: Response,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
    store: BlobStoreDep,
) -> MessagePublic:
    upload = await read_upload(
        request.headers.get("content-type", ""),
        request.stream(),
        limit=settings.max_attachment_bytes,
    )
    posted = await run_in_threadpool(
        lambda: service.upload_attachment(
            session=session,
            database=database,
            actor=actor,
            settings=settings,
            keyring=keyring,
            store=store,
            thread_id=tid,
            upload=upload,
        )
    )
    if not posted.created:
        response.status_code = 200
    return posted.message


@router.get(
    "/attachments/{aid}",
    response_class=StreamingResponse,
    openapi_extra=declares("attachment.read"),
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_attachment(
    *,
    aid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
    store: BlobStoreDep,
) -> StreamingResponse:
    download = service.download_attachment(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        store=store,
        attachment_id=aid,
    )
    ascii_name = download.filename.encode("ascii", "replace").decode().replace('"', "'")
    disposition = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(download.filename)}"
    )
    return StreamingResponse(
        download.chunks,
        media_type=download.content_type,
        headers={
            "Content-Disposition": disposition,
            "Content-Length": str(download.size),
            "Cache-Control": "no-store",
        },
    )


# -- tasks -------------------------------------------------------------------------------------


@router.get("/threads/{tid}/tasks", response_model=TaskList, openapi_extra=declares("task.list"))
def list_tasks(
    *,
    tid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> TaskList:
    return service.list_tasks(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        thread_id=tid,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "/threads/{tid}/tasks",
    status_code=201,
    response_model=TaskPublic,
    openapi_extra=declares("task.create"),
)
def create_task(
    *,
    tid: uuid.UUID,
    body: TaskCreate,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> TaskPublic:
    return service.create_task(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        thread_id=tid,
        request=body,
    )


@router.get("/tasks/{id}", response_model=TaskPublic, openapi_extra=declares("task.read"))
def get_task(
    *,
    id: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> TaskPublic:
    return service.get_task(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        task_id=id,
    )


@router.patch("/tasks/{id}", response_model=TaskPublic, openapi_extra=declares("task.update"))
def update_task(
    *,
    id: uuid.UUID,
    body: TaskUpdate,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> TaskPublic:
    return service.update_task(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        task_id=id,
        request=body,
    )


@router.get(
    "/me/tasks",
    response_model=TaskList,
    openapi_extra=declares("task.list_mine"),
    summary="What needs me: open tasks assigned to me, across my care groups",
)
def my_tasks(
    *,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> TaskList:
    return service.my_tasks(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        cursor=cursor,
        limit=limit,
    )


# -- live events -------------------------------------------------------------------------------


@router.get(
    "/me/events",
    response_class=StreamingResponse,
    openapi_extra=declares("thread.list"),
    summary="Live counters of my threads (Server-Sent Events: ids and counts, never content)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
def events(
    *,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> StreamingResponse:
    stream = service.open_events(session=session, database=database, actor=actor, settings=settings)
    return StreamingResponse(
        stream.events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# -- break-the-glass ---------------------------------------------------------------------------


@router.post(
    "/threads/{tid}/break-glass",
    status_code=201,
    response_model=BreakGlassPublic,
    openapi_extra=declares("grant.create"),
    summary="Emergency read access (reason, recent authentication; audited and notified)",
)
def break_glass(
    *,
    tid: uuid.UUID,
    body: BreakGlassCreate,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> BreakGlassPublic:
    return service.break_glass(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        thread_id=tid,
        request=body,
    )
