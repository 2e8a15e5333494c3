"""The operator command line: --json prints exactly one JSON object."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path


def hdsapp(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hdsapp", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_init_creates_private_state_and_is_idempotent(tmp_path: Path, database_url: str) -> None:
    env = {"HDS_DATA_DIR": str(tmp_path / "var"), "HDS_DATABASE_URL": database_url}
    first = hdsapp("init", "--json", env=env)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert set(data) >= {"data_dir", "database"}
    key = tmp_path / "var" / "secrets" / "app.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    secret = key.read_bytes()
    again = hdsapp("init", "--json", env=env)
    assert again.returncode == 0
    assert json.loads(again.stdout)["created_secrets"] == []
    assert key.read_bytes() == secret
    check = hdsapp("check", "--json", env=env)
    assert check.returncode == 0, check.stdout
    assert json.loads(check.stdout)["ok"] is True


def test_bad_configuration_is_refused_naming_the_variable(tmp_path: Path) -> None:
    result = hdsapp("check", "--json", env={"HDS_DATA_DIR": str(tmp_path), "HDS_PORT": "x"})
    assert result.returncode == 2
    body = json.loads(result.stdout)
    assert body["ok"] is False
    assert body["problems"][0].startswith("HDS_PORT:")
    text = hdsapp("check", env={"HDS_DATA_DIR": str(tmp_path), "HDS_PORT": "x"})
    assert "HDS_PORT" in text.stderr
    assert "Traceback" not in text.stderr


def test_check_fails_when_migrations_are_pending(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    result = hdsapp("check", "--json", env={"HDS_DATA_DIR": str(tmp_path), "HDS_DATABASE_URL": url})
    assert result.returncode == 1
    assert any("migrations pending" in p for p in json.loads(result.stdout)["problems"])


def test_migrate_reports_heads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    result = hdsapp(
        "migrate", "--json", env={"HDS_DATA_DIR": str(tmp_path), "HDS_DATABASE_URL": url}
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["heads"]
