"""python -m audit verify EXPORT [--key VERIFIER_KEY ...] [--json]

Exit status: 0 when everything verifies, 1 when something does not, 2 when the input cannot be
used (no such file, not JSON, not an export, a malformed key or command line).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from audit.export import ExportError, parse_export
from audit.note import NoteError, Verifier
from audit.verify import verify_export

OK, FAILED, UNUSABLE = 0, 1, 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m audit", description="Verify an hdsapp audit export offline.")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify",
        help="verify an export",
        epilog="exit status: 0 verified, 1 verification failed, 2 unusable input",
    )
    verify.add_argument("export", metavar="EXPORT", help="the export file, or - for stdin")
    verify.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="VERIFIER_KEY",
        help="a C2SP verifier key (name+keyid+base64) to pin; repeat for several",
    )
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in argv
    try:
        args = _parser().parse_args(argv)
        keys = [Verifier.parse(k) for k in args.key]
        path = args.export
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        export = parse_export(data)
    except (_UsageError, NoteError, ExportError, OSError) as e:
        message = str(e)
        if as_json:
            _print_json({"ok": False, "entries": None, "checkpoint_size": None, "error": message})
        else:
            print(f"unusable input: {message}", file=sys.stderr)
        return UNUSABLE
    report = verify_export(export, keys)
    if as_json:
        _print_json(report.to_json())
    elif report.ok:
        used = ", ".join(str(k) for k in keys or export.verifier_keys)
        print(
            f"OK: entries [{export.start}, {export.end}) of {export.origin} verified"
            f" ({report.withheld} withheld) up to the checkpoint at size {report.checkpoint_size}"
        )
        if report.key_pinned:
            print(f"signed by the pinned key {used}")
        else:
            print(
                f"key NOT pinned: {used} was taken from the export itself; pass --key with"
                " a key you obtained elsewhere to know who signed"
            )
    else:
        print(f"FAILED: {report.error}")
    return OK if report.ok else FAILED


def _print_json(obj: dict[str, object]) -> None:
    print(json.dumps(obj, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
