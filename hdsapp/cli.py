"""The ``hdsapp`` command for operators.

Every command accepts ``--json`` and then prints exactly one JSON object on stdout; without it,
text for people. Secrets are read from stdin, never from arguments. Domain packages contribute
their commands through a ``commands.py`` module with a ``register(subparsers)`` function,
found by hdsapp.core.modules.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdsapp import migrations
from hdsapp.config import ConfigError, Settings, load_settings, required_secret_files
from hdsapp.core.db import Database
from hdsapp.core.modules import domain_modules
from hdsapp.core.secrets import create_secret_file, ensure_private_dir


@dataclass
class Outcome:
    """What a command prints: ``data`` as JSON with --json, ``text`` otherwise."""

    data: dict[str, Any]
    text: str = ""
    exit_code: int = 0
    extra_lines: list[str] = field(default_factory=list)


Handler = Callable[[argparse.Namespace, Settings], Outcome]


class CommandError(Exception):
    """A refusal the operator can act on; printed without a traceback."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    help_text: str,
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=handler)
    return parser


# -- foundation commands ---------------------------------------------------------------------


def initialise(settings: Settings) -> dict[str, Any]:
    ensure_private_dir(settings.data_dir)
    created = [str(p) for p in required_secret_files(settings) if create_secret_file(p)]
    from hdsapp.auditing.signing import create_signing_key

    if signing_key := create_signing_key(settings):
        created.append(str(signing_key))
    from hdsapp.core.crypto.keyring import ensure_root_key

    if root_key := ensure_root_key(settings):
        created.append(root_key)
    migrations.upgrade(settings.effective_database_url)
    return {
        "data_dir": str(settings.data_dir.resolve()),
        "database": _redacted_url(settings.effective_database_url),
        "created_secrets": created,
    }


def cmd_init(_args: argparse.Namespace, settings: Settings) -> Outcome:
    data = initialise(settings)
    return Outcome(data, f"Initialised {data['data_dir']} (database {data['database']}).")


def cmd_migrate(_args: argparse.Namespace, settings: Settings) -> Outcome:
    url = settings.effective_database_url
    migrations.upgrade(url)
    heads = sorted(migrations.current_heads(url))
    return Outcome(
        {"database": _redacted_url(url), "heads": heads}, f"Database at {', '.join(heads)}."
    )


def cmd_check(_args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.core.crypto.keyring import keyring_for
    from hdsapp.core.jobs import configure_celery
    from hdsapp.system import service

    database = Database(settings.effective_database_url)
    try:
        readiness = service.readiness(
            database=database, celery=configure_celery(settings), keyring=keyring_for(settings)
        )
    finally:
        database.dispose()
    problems = [f"{c.name}: {c.reason}" for c in readiness.checks if not c.ok]
    text = "Configuration OK." if not problems else "\n".join(problems)
    return Outcome(
        {"ok": not problems, "env": settings.env, "problems": problems},
        text,
        exit_code=0 if not problems else 1,
    )


def cmd_demo(_args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.core.actor import ALL_SCOPES, SYSTEM_REQUEST, Actor, Role, system_actor
    from hdsapp.core.crypto.keyring import keyring_for
    from hdsapp.core.db import database_for, utcnow
    from hdsapp.groups import service as groups
    from hdsapp.identity import service as identity
    from hdsapp.patients import service as patients
    from hdsapp.threads import service as threads
    from hdsapp.threads.blobs import FilesystemBlobStore

    if settings.env == "production":
        raise CommandError("demo accounts have published credentials: refused in production")
    initialise(settings)
    database = database_for(settings.effective_database_url)
    with database.unit_of_work() as session:
        users = identity.seed_demo_users(
            session=session, settings=settings, actor=system_actor(), now=utcnow()
        )
        keyring = keyring_for(settings)
        group_id = groups.seed_demo_group(
            session=session,
            database=database,
            actor=system_actor(),
            settings=settings,
            keyring=keyring,
            members={u["email"]: Role(u["role"]) for u in users},
        )
        # The demo doctor registers the demo patients (as the audit log records it).
        clinicians = {}
        for demo in identity.DEMO_USERS:
            user = identity.user_by_email(session, demo.email)
            if demo.role == Role.CLINICIAN:
                clinicians[demo.key] = Actor(
                    kind="user",
                    request=SYSTEM_REQUEST,
                    user_id=user.id,
                    rpps=user.rpps,
                    profession=user.profession,
                    memberships={group_id: Role.CLINICIAN},
                    scopes=ALL_SCOPES,
                )
        patient_ids = patients.seed_demo_patients(
            session=session,
            database=database,
            settings=settings,
            keyring=keyring,
            group_id=group_id,
            clinician=clinicians["doctor"],
        )
        # Threads with messages, a task and an attachment, written by the demo clinicians.
        threads.seed_demo_threads(
            session=session,
            database=database,
            settings=settings,
            keyring=keyring,
            store=FilesystemBlobStore(settings.blob_path),
            group_id=group_id,
            patient_ids=patient_ids,
            members=clinicians,
        )
    data: dict[str, Any] = {"group_id": str(group_id), "users": users}
    lines = [
        f"  {u['role']:<12} {u['email']:<36} {u['password']:<28} {u['totp_secret']}" for u in users
    ]
    text = (
        f"Demo care group {group_id}; users (demo only: published credentials; TOTP secret to "
        "enrol):\n" + "\n".join(lines)
    )
    return Outcome(data, text)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.core.jobs import configure_celery

    argv = ["worker", "--loglevel=INFO", f"--concurrency={settings.worker_concurrency}"]
    if args.beat:
        argv += ["--beat", f"--schedule={settings.data_dir / 'beat-schedule'}"]
    configure_celery(settings).worker_main(argv)
    return Outcome({"stopped": "worker"}, "Worker stopped.")


def cmd_beat(_args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.core.jobs import configure_celery

    configure_celery(settings).start(
        ["beat", "--loglevel=INFO", f"--schedule={settings.data_dir / 'beat-schedule'}"]
    )
    return Outcome({"stopped": "beat"}, "Scheduler stopped.")


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from hdsapp.app import create_app
    from hdsapp.core.logging import configure_logging

    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )


def cmd_serve(args: argparse.Namespace, settings: Settings) -> Outcome:
    host, port = args.host or settings.host, args.port or settings.port
    _serve(settings, host, port)
    return Outcome({"stopped": "serve", "host": host, "port": port}, "Stopped.")


def cmd_run(args: argparse.Namespace, settings: Settings) -> Outcome:
    initialise(settings)
    host, port = args.host or settings.host, args.port or settings.port
    # One machine: the worker (with its embedded scheduler) runs beside the API.
    worker = subprocess.Popen([sys.executable, "-m", "hdsapp", "worker", "--beat"])
    try:
        _serve(settings, host, port)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return Outcome({"stopped": "run", "host": host, "port": port}, "Stopped.")


def _redacted_url(url: str) -> str:
    """The URL without its password, for output and logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hdsapp", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_command(subparsers, "init", cmd_init, "create var/, secrets and the database")
    add_command(subparsers, "migrate", cmd_migrate, "apply database migrations")
    add_command(subparsers, "check", cmd_check, "validate configuration and connectivity")
    add_command(subparsers, "demo", cmd_demo, "seed the demo care group")
    for name, handler, help_text in (
        ("run", cmd_run, "init, then serve API, PWA, worker and scheduler on one machine"),
        ("serve", cmd_serve, "serve the API and PWA only (worker and beat run apart)"),
    ):
        serving = add_command(subparsers, name, handler, help_text)
        serving.add_argument("--host", default=None)
        serving.add_argument("--port", type=int, default=None)
    worker = add_command(subparsers, "worker", cmd_worker, "run a background worker")
    worker.add_argument("--beat", action="store_true", help="embed the scheduler")
    add_command(subparsers, "beat", cmd_beat, "run the scheduler")
    for module in domain_modules("commands"):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Everything this process creates (database, broker, secrets, blobs) is for its user only.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    as_json: bool = args.json
    try:
        settings = load_settings()
        outcome: Outcome = args.handler(args, settings)
    except ConfigError as exc:
        return _fail(as_json, "configuration", exc.problems, exit_code=2)
    except CommandError as exc:
        return _fail(as_json, "refused", [str(exc)], exit_code=exc.exit_code)
    if as_json:
        print(json.dumps(outcome.data, default=str))
    else:
        print(outcome.text)
        for line in outcome.extra_lines:
            print(line)
    return outcome.exit_code


def _fail(as_json: bool, kind: str, problems: list[str], *, exit_code: int) -> int:
    if as_json:
        print(json.dumps({"ok": False, "error": kind, "problems": problems}))
    else:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
    return exit_code
