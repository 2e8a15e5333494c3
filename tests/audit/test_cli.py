"""`python -m audit verify`, run as an auditor would: exit 0 verified, 1 failed, 2 unusable."""

import json
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from audit.__main__ import main
from tests.audit.logs import dumps, make_log

REPO = Path(__file__).resolve().parents[2]
LOG = make_log(12)
GOOD = dumps(LOG.export(3, 9, [5, 12]))
KEY = str(LOG.signer.verifier)


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_json_object(text: str) -> dict[str, Any]:
    assert text.endswith("\n")
    assert text.count("\n") == 1
    obj = json.loads(text)
    assert isinstance(obj, dict)
    return obj


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "export.json"
    path.write_text(GOOD, encoding="utf-8")
    return path


@pytest.fixture
def tampered(tmp_path: Path) -> Path:
    doc = json.loads(GOOD)
    doc["bundle"]["entry"][2]["resource"]["outcome"] = "12"
    path = tmp_path / "tampered.json"
    path.write_text(dumps(doc), encoding="utf-8")
    return path


def test_verified_without_a_pinned_key(good: Path) -> None:
    done = run("verify", str(good))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: entries [3, 9) of hds.example/audit verified (0 withheld)")
    assert f"key NOT pinned: {KEY} was taken from the export" in done.stdout
    assert done.stderr == ""


def test_verified_with_a_pinned_key_as_json(good: Path) -> None:
    done = run("verify", str(good), "--key", KEY, "--json")
    assert done.returncode == 0
    assert one_json_object(done.stdout) == {"ok": True, "entries": 6, "checkpoint_size": 12}
    text = run("verify", str(good), "--key", KEY)
    assert f"signed by the pinned key {KEY}" in text.stdout


def test_tampered_export_exits_1_naming_the_entry(tampered: Path) -> None:
    done = run("verify", str(tampered))
    assert done.returncode == 1
    assert done.stdout == "FAILED: entry 5: event hash mismatch\n"
    as_json = run("verify", "--json", str(tampered))
    assert as_json.returncode == 1
    assert one_json_object(as_json.stdout) == {
        "ok": False, "entries": 6, "checkpoint_size": None,
        "error": "entry 5: event hash mismatch",
    }  # fmt: skip


def test_wrong_key_exits_1(good: Path) -> None:
    other = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
    done = run("verify", str(good), "--key", other)
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED: checkpoint 0: no signature by a known key")


UNUSABLE = {
    "truncated": GOOD[: len(GOOD) * 2 // 3],
    "empty": "",
    "garbage": "\x00\x01binary\x7f",
    "not an export": '{"hello": "world"}',
    "wrong format": GOOD.replace("hdsapp-audit-export", "other-export"),
    "nested": "[" * 50_000,
}


@pytest.mark.parametrize("name", list(UNUSABLE))
def test_unusable_files_exit_2_without_traceback(tmp_path: Path, name: str) -> None:
    path = tmp_path / "export.json"
    path.write_text(UNUSABLE[name], encoding="utf-8")
    done = run("verify", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("unusable input: ")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    as_json = run("verify", str(path), "--json")
    assert as_json.returncode == 2
    report = one_json_object(as_json.stdout)
    assert report["ok"] is False
    assert report["error"]
    assert "Traceback" not in as_json.stderr


def test_invalid_utf8_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(GOOD.encode()[:50] + b"\xff\xfe" + GOOD.encode()[50:])
    done = run("verify", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith("unusable input: not JSON")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "/nonexistent/export.json"], "No such file or directory"),
        (["verify", "."], "Is a directory"),
        (["verify", "x.json", "--key", "not-a-key"], "not a verifier key"),
        (["verify"], "the following arguments are required: EXPORT"),
        (["check", "x.json"], "invalid choice"),
        ([], "the following arguments are required: command"),
    ],
)
def test_bad_invocations_exit_2(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    as_json = run(*args, "--json")
    assert as_json.returncode == 2
    assert message in one_json_object(as_json.stdout)["error"]


def test_reads_standard_input() -> None:
    done = run("verify", "-", "--json", stdin=GOOD)
    assert done.returncode == 0
    assert one_json_object(done.stdout)["ok"] is True


def test_main_in_process(good: Path, tampered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(good), "--key", KEY]) == 0
    assert capsys.readouterr().out.endswith(f"signed by the pinned key {KEY}\n")
    assert main(["verify", str(good)]) == 0
    assert "key NOT pinned" in capsys.readouterr().out
    assert main(["verify", str(tampered)]) == 1
    assert capsys.readouterr().out == "FAILED: entry 5: event hash mismatch\n"
    assert main(["verify", str(tampered), "--json"]) == 1
    assert one_json_object(capsys.readouterr().out)["error"] == "entry 5: event hash mismatch"
    assert main(["verify", str(good.parent / "missing.json")]) == 2
    assert capsys.readouterr().err.startswith("unusable input: [Errno 2]")
    assert main(["verify", "--json"]) == 2
    assert one_json_object(capsys.readouterr().out) == {
        "ok": False, "entries": None, "checkpoint_size": None,
        "error": "python -m audit verify: the following arguments are required: EXPORT",
    }  # fmt: skip


def test_module_entry_point(
    good: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["audit", "verify", str(good), "--json"])
    monkeypatch.delitem(sys.modules, "audit.__main__")
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("audit", run_name="__main__")
    assert exit_.value.code == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_undecodable_key_argument_exits_2(good: Path) -> None:
    done = subprocess.run(
        [sys.executable.encode(), b"-m", b"audit", b"verify", str(good).encode(),
         b"--key", b"\xff+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"],
        cwd=REPO, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(b"unusable input: not a verifier key")
    assert b"Traceback" not in done.stderr
