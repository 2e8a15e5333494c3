"""``hdsapp audit verify | checkpoint | key``."""

from __future__ import annotations

import argparse

from hdsapp.cli import CommandError, Outcome, add_command
from hdsapp.config import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    help_text = "verify the audit log, sign a checkpoint, show the verifier key"
    audit = subparsers.add_parser("audit", help=help_text, description=help_text)
    commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = add_command(
        commands,
        "verify",
        cmd_verify,
        "recompute every entry, the tree and every checkpoint; exit 0 only if all holds",
    )
    verify.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="VERIFIER_KEY",
        help="a C2SP verifier key to pin (default: the public half of the signing key file)",
    )
    add_command(commands, "checkpoint", cmd_checkpoint, "sign a checkpoint of the log now")
    add_command(commands, "key", cmd_key, "print the verifier key to pin (name+keyid+base64)")


def cmd_verify(args: argparse.Namespace, settings: Settings) -> Outcome:
    from audit.note import NoteError, Verifier
    from hdsapp.auditing import repository, service
    from hdsapp.auditing.signing import load_signer
    from hdsapp.core.secrets import SecretFileError

    url = settings.effective_database_url
    try:
        keys = [Verifier.parse(k) for k in args.key]
    except NoteError as e:
        raise CommandError(f"--key: {e}", exit_code=2) from None
    pinned, source = bool(keys), "--key"
    if not keys:
        try:
            keys, pinned, source = [load_signer(settings).verifier], True, "the signing key file"
        except SecretFileError:
            pinned, source = False, "the database (NOT pinned)"
    with repository.snapshot(url) as session:
        if not keys:
            keys = [
                Verifier.parse(k) for k in {c.verifier_key for c in repository.checkpoints(session)}
            ]
        report = service.verify_log(session=session, verifiers=keys, pinned=pinned)
    if report.ok:
        text = (
            f"OK: {report.entries} entries and {report.checkpoints} checkpoints verified"
            f" (latest at size {report.checkpoint_size}); keys from {source}."
        )
    else:
        text = f"FAILED: {report.error}"
    return Outcome(report.model_dump(), text, exit_code=0 if report.ok else 1)


def cmd_checkpoint(_args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.auditing import service
    from hdsapp.auditing.signing import load_signer
    from hdsapp.core.db import database_for
    from hdsapp.core.secrets import SecretFileError

    try:
        signer = load_signer(settings)
    except SecretFileError as e:
        raise CommandError(str(e)) from None
    database = database_for(settings.effective_database_url)
    result = service.checkpoint_now(database=database, signer=signer)
    verb = "Signed" if result.signed else "Already signed"
    text = f"{verb}: checkpoint at size {result.checkpoint_size} ({result.entries} entries)."
    return Outcome(result.model_dump(), text)


def cmd_key(_args: argparse.Namespace, settings: Settings) -> Outcome:
    from hdsapp.auditing.signing import load_signer
    from hdsapp.core.secrets import SecretFileError

    try:
        key = str(load_signer(settings).verifier)
    except SecretFileError as e:
        raise CommandError(str(e)) from None
    return Outcome({"verifier_key": key, "origin": settings.effective_audit_origin}, key)
