"""``hdsapp groups create`` and ``hdsapp groups add-member``: the operator sets up a care group.

Both run as the platform (the system actor): audited like any use case, refused by the policy
for anything clinical.
"""

from __future__ import annotations

import argparse
import uuid

from hdsapp.cli import CommandError, Outcome, add_command
from hdsapp.config import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    groups = subparsers.add_parser(
        "groups", help="care groups and their members", description="care groups and members"
    )
    actions = groups.add_subparsers(dest="groups_command", required=True)
    create = add_command(
        actions, "create", cmd_create, "create a care group with its first coordinator"
    )
    create.add_argument("name")
    create.add_argument("--coordinator", required=True, metavar="EMAIL")
    create.add_argument("--description", default=None)
    add = add_command(
        actions, "add-member", cmd_add_member, "make an existing user a member of a group"
    )
    add.add_argument("group_id", type=_uuid, metavar="GROUP_ID")
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--role", required=True, choices=["clinician", "coordinator", "auditor"])


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError("not a group id (UUID)") from None


def cmd_create(args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.core.actor import system_actor
    from hdsapp.core.crypto.keyring import keyring_for
    from hdsapp.core.db import database_for
    from hdsapp.core.errors import HdsError
    from hdsapp.groups import service

    database = database_for(settings.effective_database_url)
    name = args.name.strip()
    if not name or len(name) > 200:
        raise CommandError("The group name must have 1 to 200 characters.")
    try:
        with database.unit_of_work() as session:
            group = service.create_group(
                session=session,
                database=database,
                actor=system_actor(),
                settings=settings,
                keyring=keyring_for(settings),
                name=name,
                description=args.description,
                coordinator_email=args.coordinator,
            )
    except HdsError as exc:
        raise CommandError(exc.detail) from None
    return Outcome(
        {"group_id": str(group.id)},
        f"Created care group {group.name!r} ({group.id}), coordinator {args.coordinator}.",
    )


def cmd_add_member(args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.core.actor import Role, system_actor
    from hdsapp.core.db import database_for
    from hdsapp.core.errors import HdsError
    from hdsapp.groups import service

    database = database_for(settings.effective_database_url)
    try:
        with database.unit_of_work() as session:
            member = service.add_member(
                session=session,
                database=database,
                actor=system_actor(),
                settings=settings,
                group_id=args.group_id,
                email=args.email,
                role=Role(args.role),
            )
    except HdsError as exc:
        raise CommandError(exc.detail) from None
    return Outcome(
        {"group_id": str(member.group_id), "user_id": str(member.user_id), "role": member.role},
        f"{args.email} is now {member.role} of group {member.group_id}.",
    )
