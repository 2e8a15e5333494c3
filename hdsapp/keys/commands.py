"""``hdsapp keys status | rotate | destroy-old | shred | reapply-shreds | check``.

Every command prints one JSON object with ``--json``. Rotation runs here, in batches, unless
``--background`` hands it to the workers (Celery tasks ``hdsapp.keys.rotate``/``rotate_root``).
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from hdsapp.cli import CommandError, Outcome, add_command
from hdsapp.config import Settings

if TYPE_CHECKING:
    from hdsapp.core.crypto.keyring import Keyring
    from hdsapp.core.db import Database


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    help_text = "encryption keys: status, rotation, destruction of old versions, shredding"
    keys = subparsers.add_parser("keys", help=help_text, description=help_text)
    commands = keys.add_subparsers(dest="keys_command", required=True)
    add_command(
        commands,
        "status",
        cmd_status,
        "provider, root versions, KEK versions per group, data key counts and usage",
    )
    rotate = add_command(
        commands,
        "rotate",
        cmd_rotate,
        "re-wrap every data key under a new KEK version (all groups, or --group), or every "
        "KEK under a new root version (--root); resumes an interrupted rotation",
    )
    rotate.add_argument("--group", type=_uuid, default=None, help="only this care group")
    rotate.add_argument("--root", action="store_true", help="rotate the root key instead")
    rotate.add_argument(
        "--destroy-old", action="store_true", help="then destroy the versions no longer used"
    )
    rotate.add_argument(
        "--background", action="store_true", help="enqueue it for the workers instead"
    )
    rotate.add_argument("--batch", type=int, default=500, help="rows re-wrapped per transaction")
    destroy = add_command(
        commands,
        "destroy-old",
        cmd_destroy_old,
        "destroy the KEK versions (or with --root the root versions) nothing is wrapped under",
    )
    destroy.add_argument("--group", type=_uuid, default=None, help="only this care group")
    destroy.add_argument("--root", action="store_true", help="old root versions")
    shred = add_command(
        commands,
        "shred",
        cmd_shred,
        "crypto-shred a thread (or a whole group): destroy its keys, record it in the ledger",
    )
    target = shred.add_mutually_exclusive_group(required=True)
    target.add_argument("--thread", type=_uuid, help="the case thread")
    target.add_argument("--group", type=_uuid, help="the whole care group")
    shred.add_argument(
        "--reason", required=True, help="why (kept in the ledger and the audit log; no health data)"
    )
    add_command(
        commands,
        "reapply-shreds",
        cmd_reapply,
        "delete again the keys the shred ledger names (after restoring a database backup)",
    )
    add_command(
        commands,
        "check",
        cmd_check,
        "every key version stored data needs is present and unwraps (the start-up self-check)",
    )


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


@contextmanager
def _store(settings: Settings) -> Iterator[tuple[Database, Keyring]]:
    from hdsapp import migrations
    from hdsapp.core.crypto.errors import CryptoError
    from hdsapp.core.crypto.keyring import keyring_for
    from hdsapp.core.db import database_for
    from hdsapp.core.errors import HdsError

    url = settings.effective_database_url
    if not migrations.is_up_to_date(url):
        raise CommandError("the database is not initialised or migrated: run `hdsapp init`")
    try:
        yield database_for(url), keyring_for(settings)
    except HdsError as exc:
        raise CommandError(exc.detail) from None
    except CryptoError as exc:
        raise CommandError(f"key store: {exc}") from None


def cmd_status(_args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.keys import service

    with _store(settings) as (database, keyring):
        data = service.status(database=database, keyring=keyring)
    provider = data["provider"]
    totals = data["data_keys"]
    lines = [
        f"Provider: {provider.get('kind')} (root versions {provider.get('versions')}, "
        f"current {provider.get('current_version')})",
        "Root versions known: "
        + ", ".join(
            f"{r['version']} {r['status']} ({r['wraps']} keys)" for r in data["root_versions"]
        ),
        f"Groups: {len(data['groups'])}; data key versions: {totals['versions']}, seals "
        f"{totals['seals']}, highest usage {totals['max_usage']:.2%} of {totals['cap']}, "
        f"awaiting re-wrap {totals['pending_rewrap']}",
        f"Shredded: {data['shreds']['entries']} (last {data['shreds']['last'] or 'never'}); "
        f"last rotation: {data['last_rotation'] or 'never'}",
    ]
    for group in data["groups"]:
        versions = ", ".join(f"v{v['version']} {v['status']}" for v in group["kek_versions"])
        lines.append(f"  group {group['group_id']}: KEK {versions}")
    return Outcome(data, "\n".join(lines))


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.core.actor import system_actor
    from hdsapp.keys import service

    if args.root and args.group:
        raise CommandError("--root rotates the root key of every group: drop --group", exit_code=2)
    if args.batch < 1:
        raise CommandError("--batch must be at least 1", exit_code=2)
    with _store(settings) as (database, keyring):
        if args.background:
            return _enqueue_rotation(args, settings, database, keyring)
        actor = system_actor()
        if args.root:
            reports = [
                service.rotate_root(
                    database=database,
                    keyring=keyring,
                    actor=actor,
                    destroy_old=args.destroy_old,
                    batch=args.batch,
                )
            ]
        elif args.group:
            reports = [
                service.rotate_group(
                    database=database,
                    keyring=keyring,
                    actor=actor,
                    group_id=args.group,
                    destroy_old=args.destroy_old,
                    batch=args.batch,
                )
            ]
        else:
            reports = service.rotate_all_groups(
                database=database,
                keyring=keyring,
                actor=actor,
                destroy_old=args.destroy_old,
                batch=args.batch,
            )
    data: dict[str, Any] = {"rotated": [r.as_dict() for r in reports]}
    text = "\n".join(
        f"{r.scope} {r.group_id or ''}: now version {r.version}, {r.rewrapped} keys re-wrapped"
        + (f", destroyed {r.destroyed}" if r.destroyed else "")
        for r in reports
    )
    return Outcome(data, text or "No group has keys yet: nothing to rotate.")


def _enqueue_rotation(
    args: argparse.Namespace, settings: Settings, database: Database, keyring: Keyring
) -> Outcome:
    from hdsapp.core.jobs import configure_celery, enqueue
    from hdsapp.keys import repository

    configure_celery(settings)
    queued: list[dict[str, Any]] = []
    with database.unit_of_work() as session:
        destroy = int(args.destroy_old)
        if args.root:
            target = keyring.current_root_version(session) + 1
            enqueue(session, "hdsapp.keys.rotate_root", target, destroy)
            queued.append({"task": "hdsapp.keys.rotate_root", "root_version": target})
        else:
            groups = [args.group] if args.group else repository.group_ids(session)
            for group_id in groups:
                current = repository.active_kek_version(session, group_id)
                if current is None:
                    raise CommandError(f"the key store has no key for group {group_id}")
                enqueue(session, "hdsapp.keys.rotate", group_id, current + 1, destroy)
                queued.append(
                    {
                        "task": "hdsapp.keys.rotate",
                        "group_id": str(group_id),
                        "kek_version": current + 1,
                    }
                )
    return Outcome({"queued": queued}, f"Queued {len(queued)} rotation job(s) for the workers.")


def cmd_destroy_old(args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.core.actor import system_actor
    from hdsapp.keys import repository, service

    with _store(settings) as (database, keyring):
        actor = system_actor()
        if args.root:
            destroyed: dict[str, list[int]] = {
                "root": service.destroy_old_root_keys(
                    database=database, keyring=keyring, actor=actor
                )
            }
        else:
            with database.unit_of_work() as session:
                groups = [args.group] if args.group else repository.group_ids(session)
            destroyed = {
                str(group_id): service.destroy_old_group_keys(
                    database=database, keyring=keyring, actor=actor, group_id=group_id
                )
                for group_id in groups
            }
    done = {scope: versions for scope, versions in destroyed.items() if versions}
    text = (
        "\n".join(f"{scope}: destroyed versions {versions}" for scope, versions in done.items())
        or "Nothing to destroy (old versions still wrap keys: finish the rotation first)."
    )
    return Outcome({"destroyed": destroyed}, text)


def cmd_shred(args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.core.actor import system_actor
    from hdsapp.keys import service

    reason = " ".join(args.reason.split())
    if not reason:
        raise CommandError("--reason must say why", exit_code=2)
    with _store(settings) as (database, keyring), database.unit_of_work() as session:
        if args.thread:
            result = service.shred_thread(
                session,
                actor=system_actor(),
                thread_id=args.thread,
                reason=reason,
                keyring=keyring,
                database=database,
            )
        else:
            result = service.shred_group(
                session,
                actor=system_actor(),
                group_id=args.group,
                reason=reason,
                keyring=keyring,
                database=database,
            )
    what = f"thread {result.thread_id}" if result.thread_id else f"group {result.group_id}"
    data = {
        "thread_id": str(result.thread_id) if result.thread_id else None,
        "group_id": str(result.group_id),
        "key_versions_destroyed": result.key_versions,
        "already_shredded": result.already,
        "ledger_id": str(result.record.id),
        "shredded_at": result.record.shredded_at.isoformat(),
    }
    if result.already:
        text = f"The keys of {what} were already shredded ({data['shredded_at']})."
    else:
        text = f"Shredded {what}: {result.key_versions} key version(s) destroyed."
    return Outcome(data, text)


def cmd_reapply(_args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.keys import service

    with _store(settings) as (database, keyring):
        report = service.reapply_shreds(database=database, keyring=keyring)
    data = report.as_dict()
    return Outcome(
        data,
        f"Shred ledger re-applied: {report.ledger_entries} entries, {report.deleted_keys} key "
        f"row(s) deleted again, {report.restored_entries} entries restored from the ledger file.",
    )


def cmd_check(_args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.keys import service

    with _store(settings) as (database, keyring):
        problems = service.self_check(
            database=database, keyring=keyring, require_root=settings.env == "production"
        )
    text = "Key store OK." if not problems else "\n".join(problems)
    return Outcome({"ok": not problems, "problems": problems}, text, exit_code=1 if problems else 0)
