"""Guards for the layout rules of DESIGN.md §3 that a slip would break silently."""

import importlib.util
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_fhir_folder_holds_no_python() -> None:
    assert not (REPO_ROOT / "fhir" / "__init__.py").exists()
    assert not list((REPO_ROOT / "fhir").rglob("*.py"))
    assert not (REPO_ROOT / "tests" / "fhir").exists()


def test_fhir_resolves_to_fhir_resources() -> None:
    spec = importlib.util.find_spec("fhir")
    assert spec is not None
    assert spec.origin is not None
    assert "site-packages" in spec.origin
    assert importlib.util.find_spec("fhir.resources.R4B") is not None


def test_tests_is_a_package() -> None:
    assert (REPO_ROOT / "tests" / "__init__.py").exists()


def test_no_local_state_is_tracked() -> None:
    ignored = (REPO_ROOT / ".gitignore").read_text().splitlines()
    assert "/var/" in ignored
    assert "/.venv/" in ignored


def test_capability_statement_base_is_data() -> None:
    base = REPO_ROOT / "fhir" / "CapabilityStatement-base.json"
    assert base.is_file()
    assert Path(base).suffix == ".json"
