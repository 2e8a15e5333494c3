"""Communication: a message of a case thread, read, searched and posted over
``hdsapp.threads.service`` — the use cases, policy actions and audit entries of
``/api/v1/threads/{tid}/messages`` (``message.list``, ``message.post``).

- ``id``: the message id; ``status``: completed; ``sent``: when it was posted; ``sender``:
  its author (``Practitioner/{user id}``); ``subject``: the thread's patient;
- ``about``: ``[{"reference": "CareTeam/{thread id}"}]``, the thread. ``about`` is
  Reference(Any) in R4 ("resources that pertain to this communication"); ``partOf`` is meant
  for the event this one is a part of, and ``encounter`` for Encounters;
- ``payload[]``: the text as ``contentString`` (opened only for whoever may read the thread)
  and an attached document as ``contentAttachment`` (type, size, file name and ``url``, the
  download ``/api/v1/attachments/{id}``, itself authorised and audited);
- ``identifier``: the client id (system ``urn:hdsapp:message-client-id``): posting again with
  the same one returns the message it made (200) instead of a second message (201). Without
  one the server makes a fresh one, and a retry posts twice;
- a correction names the message it corrects in the extension
  ``urn:hdsapp:StructureDefinition/message-corrects`` (valueReference).

Create takes ``status`` completed, ``about`` the thread, one ``payload`` ``contentString``;
``subject``, ``sender`` and ``sent`` are the server's (the thread's patient, the caller, the
time) and ignored if sent; documents are uploaded with ``POST /api/v1/threads/{tid}/attachments``.
Search: ``thread`` (``CareTeam/{id}``, the thread's messages in order), or ``patient`` (every
message about the patient in the threads the caller may read) and/or ``_id``.
"""

from __future__ import annotations

import uuid
from typing import Any

from hdsapp.core.errors import BadRequest, Unprocessable
from hdsapp.fhir_api.definition import Operation, ResourceDef
from hdsapp.fhir_api.search import (
    ids,
    page,
    parse_search,
    patient_reference,
    referenced_id,
    searching,
)
from hdsapp.fhir_api.validation import check_resource, invalid, located, referenced
from hdsapp.fhir_api.wire import (
    FhirRequest,
    FhirResult,
    Services,
    instant,
    parse_id,
    parse_resource,
)
from hdsapp.threads import service as threads
from hdsapp.threads.schemas import MessageCreate, MessagePublic

TYPE = "Communication"
CLIENT_ID = "urn:hdsapp:message-client-id"
CORRECTS = "urn:hdsapp:StructureDefinition/message-corrects"
# Where the service's fields come from in a Communication (for its 422s).
FIELD_PATHS = {
    "body": "Communication.payload[0].contentString",
    "client_id": "Communication.identifier",
    "corrects": "Communication.extension",
}


def api_origin(request: FhirRequest) -> str:
    """The server's origin (the FHIR base without ``/fhir/{gid}``)."""
    return request.base.rsplit("/fhir/", 1)[0]


def communication_resource(message: MessagePublic, origin: str) -> dict[str, Any]:
    sent = instant(message.created_at)
    resource: dict[str, Any] = {
        "resourceType": TYPE,
        "id": str(message.id),
        "meta": {"lastUpdated": sent},
    }
    if message.corrects is not None:
        reference = {"reference": f"{TYPE}/{message.corrects}"}
        resource["extension"] = [{"url": CORRECTS, "valueReference": reference}]
    resource["identifier"] = [{"system": CLIENT_ID, "value": message.client_id}]
    resource["status"] = "completed"
    if message.patient:
        resource["subject"] = {"reference": message.patient}
    resource["about"] = [{"reference": f"CareTeam/{message.thread_id}"}]
    resource["sent"] = sent
    sender: dict[str, Any] = {"reference": f"Practitioner/{message.author}"}
    if message.author_name:
        sender["display"] = message.author_name
    resource["sender"] = sender
    payload: list[dict[str, Any]] = []
    if message.body:
        payload.append({"contentString": message.body})
    attachment = message.attachment
    if attachment is not None:
        content: dict[str, Any] = {
            "contentType": attachment.content_type,
            "url": f"{origin}/api/v1/attachments/{attachment.id}",
            "size": attachment.size,
        }
        if attachment.filename:
            content["title"] = attachment.filename
        payload.append({"contentAttachment": content})
    if payload:
        resource["payload"] = payload
    return resource


def result_of(
    message: MessagePublic, request: FhirRequest, *, status: int = 200, location: str | None = None
) -> FhirResult:
    resource = communication_resource(message, api_origin(request))
    return FhirResult(
        status=status, resource=resource, last_updated=resource["sent"], location=location
    )


def read(services: Services, request: FhirRequest) -> FhirResult:
    message = threads.get_message(
        **services.args(),
        message_id=parse_id(request.id, TYPE),
    )
    return result_of(message, request)


def message_of(resource: dict[str, Any], base: str) -> tuple[uuid.UUID, MessageCreate]:
    """The thread and the message a Communication posts (422 naming the element otherwise)."""
    check_resource(TYPE, resource)
    problems: list[tuple[str, str]] = []
    if resource.get("status") != "completed":
        problems.append(("Communication.status", "a message is posted completed"))
    threads_named = [
        found
        for about in resource.get("about") or []
        if (found := referenced(about, "CareTeam", base)) is not None
    ]
    if len(threads_named) != 1:
        problems.append(("Communication.about", "one reference to the thread: CareTeam/{id}"))
    payload = resource.get("payload") or []
    texts = [p.get("contentString") for p in payload if "contentString" in p]
    for index, part in enumerate(payload):
        if "contentString" not in part:
            problems.append(
                (
                    f"Communication.payload[{index}]",
                    "documents are uploaded with POST /api/v1/threads/{tid}/attachments",
                )
            )
    if len(texts) != 1:
        problems.append(("Communication.payload", "one contentString, the message"))
    client_ids = [
        i.get("value") for i in resource.get("identifier") or [] if i.get("system") == CLIENT_ID
    ]
    if len(client_ids) > 1:
        problems.append(("Communication.identifier", f"at most one identifier of {CLIENT_ID}"))
    corrects = None
    for index, extension in enumerate(resource.get("extension") or []):
        if extension.get("url") == CORRECTS:
            corrects = referenced(extension.get("valueReference"), TYPE, base)
            if corrects is None:
                problems.append(
                    (f"Communication.extension[{index}]", "a valueReference to a Communication")
                )
    if problems:
        raise invalid(
            "The Communication is not a message this server posts.", "invalid-message", problems
        )
    client_id = client_ids[0] if client_ids else uuid.uuid4().hex
    message = MessageCreate(
        body=str(texts[0]),
        client_id=str(client_id),
        corrects=None if corrects is None else str(corrects),
    )
    return threads_named[0], message


def create(services: Services, request: FhirRequest) -> FhirResult:
    thread_id, message = message_of(parse_resource(request), request.base)
    try:
        posted = threads.post_message(
            **services.args(),
            thread_id=thread_id,
            request=message,
        )
    except Unprocessable as exc:
        raise located(exc, FIELD_PATHS, TYPE) from None
    location = request.url(TYPE, str(posted.message.id))
    return result_of(
        posted.message, request, status=201 if posted.created else 200, location=location
    )


def search_type(services: Services, request: FhirRequest) -> FhirResult:
    search = parse_search(request)
    thread_id = referenced_id(request, search, "thread", "CareTeam")
    patient, by_id = search.get("patient"), ids(search)
    if thread_id is not None and (patient is not None or by_id is not None):
        raise BadRequest(
            "Communication is searched by thread alone, or by patient and/or _id.",
            code="invalid-search",
        )
    with searching():
        if thread_id is not None:
            found = threads.list_messages(
                **services.args(),
                thread_id=thread_id,
                after=None,
                cursor=search.cursor,
                limit=search.count,
                with_total=True,
            )
        else:
            found = threads.search_messages(
                **services.args(),
                group_id=request.group_id,
                patient=None if patient is None else patient_reference(request, patient),
                ids=by_id,
                cursor=search.cursor,
                limit=search.count,
            )
    origin = api_origin(request)
    return page(
        request,
        search,
        [(str(m.id), communication_resource(m, origin)) for m in found.items],
        next_cursor=found.next_cursor,
        total=found.total,
    )


DEFINITION = ResourceDef(
    type=TYPE,
    documentation=(
        "A message of a case thread: about = CareTeam/{thread id}, payload contentString the"
        " text, contentAttachment a document (url: its download); identifier"
        f" ({CLIENT_ID}) the client id that makes a retried create return the same message."
    ),
    versioning="no-version",
    example="examples/Communication-message.json",
    operations=(
        Operation(code="read", action="message.list", handler=read),
        Operation(
            code="search-type",
            action="message.list",
            also=("thread.list",),
            handler=search_type,
            documentation=(
                "By thread (CareTeam/{id}), or by patient and/or _id; thread is not combined"
                " with the others."
            ),
        ),
        Operation(
            code="create",
            action="message.post",
            handler=create,
            documentation=(
                f"Posts a message; the same identifier ({CLIENT_ID}) again returns the"
                " message it made (200)."
            ),
        ),
    ),
    search=("thread", "patient", "_id"),
)
