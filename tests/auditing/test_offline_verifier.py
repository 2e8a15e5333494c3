"""An auditor verifies an export with nothing of hdsapp: a fresh virtual environment holding only
the ``audit`` package's own dependencies, and the ``audit`` sources beside it."""

from __future__ import annotations

import json
import shutil
import subprocess
import venv
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hdsapp.config import Settings
from hdsapp.core.db import Database
from tests.auditing.support import GROUP, api, caller, seed, sign, signer_for
from tests.conftest import REPO_ROOT

__all__ = ["api", "caller"]  # fixtures

# What audit/ imports besides the standard library (DESIGN §3), at the versions under test.
AUDIT_DEPENDENCIES = ("cryptography", "rfc8785")


@dataclass(frozen=True)
class Outsider:
    """A Python that has never seen hdsapp, and a folder holding only the audit sources."""

    python: Path
    workdir: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # -E -s: no PYTHONPATH, no user site; the working directory puts audit/ on the path.
        return subprocess.run(
            [str(self.python), "-E", "-s", *args],
            cwd=self.workdir,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )


@pytest.fixture(scope="module")
def outsider(tmp_path_factory: pytest.TempPathFactory) -> Outsider:
    root = tmp_path_factory.mktemp("outsider")
    venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    pins = [f"{name}=={version(name)}" for name in AUDIT_DEPENDENCIES]
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    workdir = root / "work"
    shutil.copytree(
        REPO_ROOT / "audit", workdir / "audit", ignore=shutil.ignore_patterns("__pycache__")
    )
    return Outsider(python=python, workdir=workdir)


def test_the_outsider_holds_nothing_of_hdsapp(outsider: Outsider) -> None:
    for module in ("hdsapp", "fastapi", "sqlalchemy", "pydantic", "fhir"):
        probe = outsider.run("-c", f"import {module}")
        assert probe.returncode != 0, f"{module} is importable in the fresh environment"
    listed = outsider.run("-m", "pip", "list", "--format=json", "--disable-pip-version-check")
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert names <= {"pip", "setuptools", "cryptography", "cffi", "pycparser", "rfc8785"}, names


def test_an_export_of_the_running_app_verifies_in_the_fresh_environment(
    api: TestClient, database: Database, settings: Settings, outsider: Outsider
) -> None:
    signer = signer_for(settings)
    seed(database, 12)
    sign(database, signer)
    seed(database, 6)
    sign(database, signer)
    response = api.get(f"/api/v1/groups/{GROUP}/audit/export")
    assert response.status_code == 200, response.text
    export = outsider.workdir / "export.json"
    export.write_bytes(response.content)
    key = str(signer.verifier)

    verified = outsider.run("-m", "audit", "verify", export.name, "--key", key, "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    document = json.loads(response.content)
    span = document["range"]
    assert span["end"] - span["start"] >= 16  # the last entry is the other group's
    assert json.loads(verified.stdout) == {
        "ok": True,
        "entries": span["end"] - span["start"],
        "checkpoint_size": 18,
    }

    # One altered AuditEvent: the verifier names it and fails, without a traceback.
    document["bundle"]["entry"][0]["resource"]["recorded"] = "2001-01-01T00:00:00Z"
    tampered = outsider.workdir / "tampered.json"
    tampered.write_text(json.dumps(document))
    refused = outsider.run("-m", "audit", "verify", tampered.name, "--key", key)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    first = next(e["index"] for e in document["entries"] if e["nonce"] is not None)
    assert refused.stdout == f"FAILED: entry {first}: event hash mismatch\n"

    # The wrong key: refused too.
    other = outsider.run("-m", "audit", "verify", export.name, "--key", key[:-4] + "AAA=")
    assert other.returncode != 0
