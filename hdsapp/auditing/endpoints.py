"""The auditor's API (API.md §Audit): thin routes over hdsapp.auditing.service."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import AwareDatetime

from hdsapp.auditing import service
from hdsapp.auditing.schemas import (
    AuditAction,
    AuditPage,
    ConsistencyProof,
    EntryFilter,
    InclusionProof,
)
from hdsapp.core.accesslog import AUDITED_ROUTE
from hdsapp.core.errors import BadRequest
from hdsapp.dependencies import ActorDep, DatabaseDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1", tags=["audit"])

TEXT = "text/plain; charset=utf-8"


def _action(name: str, *, audited: bool) -> dict[str, object]:
    """``openapi_extra``: the policy action of the route (hdsapp/policy/rules.toml, checked at
    start-up) and, for routes that reach the log's content, the audited marker. Checkpoints
    and proofs are hashes only and are not entries (hdsapp.auditing.service)."""
    return {"x-hds-action": name, **(AUDITED_ROUTE if audited else {})}


PATIENT_PREFIX = "Patient/"


def _patient_id(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value.removeprefix(PATIENT_PREFIX))
    except ValueError:
        raise BadRequest(
            "patient must be a patient id or Patient/{id}.", code="invalid-patient"
        ) from None


@router.get(
    "/groups/{gid}/audit",
    response_model=AuditPage,
    openapi_extra=_action("audit.query", audited=True),
    summary="Query the group's audit log (auditors of the group)",
)
def query_audit(
    gid: uuid.UUID,
    *,
    request: Request,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    patient: Annotated[str | None, Query(max_length=80)] = None,
    actor_id: Annotated[uuid.UUID | None, Query(alias="actor")] = None,
    action: AuditAction | None = None,
    outcome: Literal["0", "4", "8", "12"] | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> AuditPage:
    query = EntryFilter(
        group_id=gid,
        patient_id=_patient_id(patient),
        actor_id=actor_id,
        action=action,
        outcome=None if outcome is None else int(outcome),
        since=since,
        until=until,
    )
    return service.query_log(
        session=session,
        database=database,
        actor=actor,
        query=query,
        cursor=cursor,
        limit=limit,
        query_string=request.url.query,
        settings=settings,
    )


@router.get(
    "/groups/{gid}/audit/export",
    openapi_extra=_action("audit.export", audited=True),
    summary="Export the group's audit log, verifiable offline (`python -m audit verify`)",
    response_description="an hdsapp-audit-export document (audit/export.py)",
)
def export_audit(
    gid: uuid.UUID,
    *,
    request: Request,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> JSONResponse:
    document = service.export_log(
        session=session,
        database=database,
        actor=actor,
        group_id=gid,
        since=since,
        until=until,
        query_string=request.url.query,
        settings=settings,
    )
    return JSONResponse(
        document,
        headers={"content-disposition": f'attachment; filename="audit-{gid}.json"'},
    )


@router.get(
    "/audit/checkpoint",
    openapi_extra=_action("audit.proof", audited=False),
    response_class=PlainTextResponse,
    summary="The latest signed checkpoint (C2SP tlog-checkpoint in a signed note)",
)
def checkpoint(session: SessionDep, actor: ActorDep) -> PlainTextResponse:
    note = service.latest_checkpoint(session=session, actor=actor)
    return PlainTextResponse(note, media_type=TEXT)


@router.get(
    "/audit/proof/inclusion",
    openapi_extra=_action("audit.proof", audited=False),
    response_model=InclusionProof,
    summary="RFC 9162 inclusion proof of an entry",
)
def inclusion_proof(
    session: SessionDep, actor: ActorDep, index: int, tree_size: int | None = None
) -> InclusionProof:
    return service.inclusion(session=session, actor=actor, index=index, tree_size=tree_size)


@router.get(
    "/audit/proof/consistency",
    openapi_extra=_action("audit.proof", audited=False),
    response_model=ConsistencyProof,
    summary="RFC 9162 consistency proof between two tree sizes",
)
def consistency_proof(
    session: SessionDep, actor: ActorDep, first: int, second: int
) -> ConsistencyProof:
    return service.consistency(session=session, actor=actor, first=first, second=second)


@router.get(
    "/audit/verifier-key",
    openapi_extra=_action("audit.proof", audited=False),
    response_class=PlainTextResponse,
    summary="The C2SP verifier key of the checkpoints (name+keyid+base64), to pin",
)
def verifier_key(session: SessionDep, actor: ActorDep) -> PlainTextResponse:
    return PlainTextResponse(service.verifier_key(session=session, actor=actor), media_type=TEXT)
