"""``hdsapp users add | suspend | activate`` and ``hdsapp tokens create``.

Secrets never come from arguments: ``users add --password-stdin`` reads the password from the
first line of stdin. The TOTP enrolment secret and a new token are printed once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from hdsapp.cli import CommandError, Outcome, add_command
from hdsapp.config import Settings

if TYPE_CHECKING:
    from sqlmodel import Session


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    help_text = "create, suspend and reactivate user accounts"
    users = subparsers.add_parser("users", help=help_text, description=help_text)
    user_commands = users.add_subparsers(dest="users_command", required=True)
    add = add_command(
        user_commands,
        "add",
        cmd_users_add,
        "create a user; with --password-stdin a local account with a TOTP secret (printed "
        "once), else an invited account that logs in through Pro Santé Connect",
    )
    add.add_argument("email")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--rpps", default=None, help="11-digit RPPS number")
    add.add_argument("--profession", default=None, help="profession code, e.g. 10 (médecin)")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin's first line"
    )
    for name, handler, text in (
        ("suspend", cmd_users_suspend, "suspend a user: their sessions and tokens end at once"),
        ("activate", cmd_users_activate, "reactivate a suspended user"),
    ):
        command = add_command(user_commands, name, handler, text)
        command.add_argument("email")

    help_text = "personal access tokens for scripts"
    tokens = subparsers.add_parser("tokens", help=help_text, description=help_text)
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True)
    create = add_command(
        token_commands,
        "create",
        cmd_tokens_create,
        "issue a token for a user (printed once; send it as Authorization: Bearer)",
    )
    create.add_argument("email")
    create.add_argument("--scope", required=True, help="comma-separated: read, write, audit")
    create.add_argument("--expires-in", default="30d", help="e.g. 1h, 7d (default 30d)")
    create.add_argument("--name", default="cli", help="a label for the token")


@contextmanager
def _unit_of_work(settings: Settings) -> Iterator[Session]:
    from hdsapp import migrations
    from hdsapp.core.db import database_for
    from hdsapp.core.errors import HdsError

    url = settings.effective_database_url
    if not migrations.is_up_to_date(url):
        raise CommandError("the database is not initialised or migrated: run `hdsapp init`")
    try:
        with database_for(url).unit_of_work() as session:
            yield session
    except HdsError as exc:
        raise CommandError(exc.detail) from None


def _read_password() -> str:
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise CommandError("--password-stdin: no password on stdin")
    return password


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.core.actor import system_actor
    from hdsapp.core.db import utcnow
    from hdsapp.identity import credentials, service

    password = _read_password() if args.password_stdin else None
    with _unit_of_work(settings) as session:
        created = service.create_user(
            session=session,
            actor=system_actor(),
            email=args.email,
            display_name=args.name,
            password=password,
            rpps=args.rpps,
            profession=args.profession,
            now=utcnow(),
        )
        user_id = created.user.id
    data: dict[str, Any] = {"user_id": str(user_id), "totp_secret": created.totp_secret}
    if created.totp_secret is None:
        text = f"Invited {args.email} ({user_id}): logs in through Pro Santé Connect."
        return Outcome(data, text)
    uri = credentials.totp_uri(created.totp_secret, account=args.email.strip().lower())
    text = (
        f"Created {args.email} ({user_id}).\n"
        f"TOTP secret (shown once, enrol it in an authenticator app): {created.totp_secret}\n"
        f"otpauth URI: {uri}"
    )
    return Outcome(data, text)


def _set_status(settings: Settings, email: str, status: Literal["active", "suspended"]) -> Outcome:
    from hdsapp.core.actor import system_actor
    from hdsapp.core.db import utcnow
    from hdsapp.identity import service

    with _unit_of_work(settings) as session:
        user = service.user_by_email(session, email)
        service.set_status(
            session=session, actor=system_actor(), user=user, status=status, now=utcnow()
        )
        user_id = user.id
    return Outcome({"user_id": str(user_id), "status": status}, f"{email} is now {status}.")


def cmd_users_suspend(args: argparse.Namespace, settings: Settings) -> Outcome:
    return _set_status(settings, args.email, "suspended")


def cmd_users_activate(args: argparse.Namespace, settings: Settings) -> Outcome:
    return _set_status(settings, args.email, "active")


def cmd_tokens_create(args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.core.actor import system_actor
    from hdsapp.core.db import utcnow
    from hdsapp.identity import service

    with _unit_of_work(settings) as session:
        user = service.user_by_email(session, args.email)
        created = service.create_token(
            session=session,
            settings=settings,
            actor=system_actor(),
            user=user,
            name=args.name,
            scopes=args.scope,
            expires_in=args.expires_in,
            now=utcnow(),
        )
        token_id, expires_at = created.row.id, created.row.expires_at
    text = (
        f"Token {token_id} for {args.email}, scopes {created.row.scopes}, "
        f"expires {expires_at:%Y-%m-%d %H:%M} UTC (shown once):\n{created.token}"
    )
    return Outcome({"token_id": str(token_id), "token": created.token}, text)
