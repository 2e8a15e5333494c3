"""Care groups, members and invitations (API.md, "Care groups"). Thin: each route declares its
policy action and hands over to the service."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from hdsapp.core.accesslog import AUDITED_ROUTE
from hdsapp.dependencies import ActorDep, DatabaseDep, KeyringDep, SessionDep, SettingsDep
from hdsapp.groups import service
from hdsapp.groups.pagination import DEFAULT_LIMIT, MAX_LIMIT
from hdsapp.groups.schemas import (
    GroupCreate,
    GroupList,
    GroupPublic,
    GroupUpdate,
    InvitationCreate,
    InvitationCreated,
    InvitationList,
    MemberList,
    MemberPublic,
    MemberUpdate,
)
from hdsapp.policy import route_action

router = APIRouter(prefix="/api/v1", tags=["care groups"])

Cursor = Annotated[str | None, Query(max_length=512)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def declares(action: str, *also: str) -> dict[str, Any]:
    """``openapi_extra`` of a route: its policy action(s), and that it is audited."""
    return {**AUDITED_ROUTE, **route_action(action, *also)}


@router.get("/groups", response_model=GroupList, openapi_extra=declares("group.list"))
def list_groups(
    *,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> GroupList:
    return service.list_groups(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "/groups",
    status_code=201,
    response_model=GroupPublic,
    openapi_extra=declares("group.create"),
)
def create_group(
    *,
    body: GroupCreate,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> GroupPublic:
    return service.create_group(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        keyring=keyring,
        name=body.name,
        description=body.description,
        coordinator_email=body.coordinator,
    )


@router.get("/groups/{gid}", response_model=GroupPublic, openapi_extra=declares("group.read"))
def get_group(
    *,
    gid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> GroupPublic:
    return service.get_group(
        session=session, database=database, actor=actor, settings=settings, group_id=gid
    )


@router.patch("/groups/{gid}", response_model=GroupPublic, openapi_extra=declares("group.update"))
def update_group(
    *,
    gid: uuid.UUID,
    body: GroupUpdate,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> GroupPublic:
    return service.update_group(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        group_id=gid,
        changes=body.model_dump(exclude_unset=True),
    )


@router.get(
    "/groups/{gid}/members", response_model=MemberList, openapi_extra=declares("member.list")
)
def list_members(
    *,
    gid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    include_removed: bool = False,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> MemberList:
    return service.list_members(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        group_id=gid,
        include_removed=include_removed,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "/groups/{gid}/members",
    status_code=201,
    response_model=InvitationCreated,
    openapi_extra=declares("invitation.create"),
    summary="Invite a member (by email or RPPS, with a role)",
)
def invite_member(
    *,
    gid: uuid.UUID,
    body: InvitationCreate,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> InvitationCreated:
    return service.invite(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        group_id=gid,
        request=body,
    )


@router.patch(
    "/groups/{gid}/members/{uid}",
    response_model=MemberPublic,
    openapi_extra=declares("member.update", "member.change_role"),
    summary="Change a member: role (needs a recent authentication), suspension, end date",
)
def update_member(
    *,
    gid: uuid.UUID,
    uid: uuid.UUID,
    body: MemberUpdate,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> MemberPublic:
    return service.update_member(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        group_id=gid,
        user_id=uid,
        update=body,
    )


@router.delete(
    "/groups/{gid}/members/{uid}",
    status_code=204,
    response_class=Response,
    openapi_extra=declares("member.remove"),
)
def remove_member(
    *,
    gid: uuid.UUID,
    uid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> Response:
    service.remove_member(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        group_id=gid,
        user_id=uid,
    )
    return Response(status_code=204)


@router.get(
    "/groups/{gid}/invitations",
    response_model=InvitationList,
    openapi_extra=declares("invitation.list"),
)
def list_invitations(
    *,
    gid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
    status: Literal["pending", "all"] = "pending",
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> InvitationList:
    return service.list_invitations(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        group_id=gid,
        pending_only=status == "pending",
        cursor=cursor,
        limit=limit,
    )


@router.delete(
    "/groups/{gid}/invitations/{iid}",
    status_code=204,
    response_class=Response,
    openapi_extra=declares("invitation.revoke"),
)
def revoke_invitation(
    *,
    gid: uuid.UUID,
    iid: uuid.UUID,
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> Response:
    service.revoke_invitation(
        session=session,
        database=database,
        actor=actor,
        settings=settings,
        group_id=gid,
        invitation_id=iid,
    )
    return Response(status_code=204)


@router.post(
    "/invitations/{token}/accept",
    response_model=MemberPublic,
    openapi_extra=declares("invitation.accept"),
)
def accept_invitation(
    *,
    token: Annotated[str, Path(max_length=128)],
    session: SessionDep,
    database: DatabaseDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> MemberPublic:
    return service.accept_invitation(
        session=session, database=database, actor=actor, settings=settings, token=token
    )
