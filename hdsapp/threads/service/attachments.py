"""Documents attached to a thread: sealed in chunks into the blob store, streamed back."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from sqlmodel import Session

from hdsapp.config import Settings
from hdsapp.core.accesslog import audited
from hdsapp.core.actor import Actor
from hdsapp.core.crypto.aad import AssociatedData
from hdsapp.core.crypto.chunks import read_sealed_chunks
from hdsapp.core.db import Database
from hdsapp.core.errors import (
    InternalError,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from hdsapp.groups import service as groups
from hdsapp.models.attachment import DOCUMENT_TYPES, Attachment
from hdsapp.models.message import Message
from hdsapp.policy import ResourceType
from hdsapp.threads import blobs, content, repository
from hdsapp.threads.service.common import (
    ATTACHMENT_CHUNK_BYTES,
    MAX_BODY_CHARS,
    Keyring,
    _access,
    _attachment_aad,
    _authorize,
    _clean_filename,
    _client_id,
    _invalid,
    _load,
    _message_aad,
    _standing,
    not_found,
)
from hdsapp.threads.service.messages import Posted, _insert_message, _message_public, _replay

log = logging.getLogger(__name__)


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
