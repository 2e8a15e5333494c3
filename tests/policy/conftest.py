"""The policy matrix: a recent-enough step-up for the whole run, and its size in the summary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hdsapp.config import Settings
from tests.conftest import make_settings
from tests.groups.world import world
from tests.policy.cells import MATRIX_CELLS

__all__ = ["world"]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # The fresh browser session of the matrix must stay "recent" for the whole run.
    return make_settings(tmp_path, database_url=database_url, step_up_seconds=3600)


@pytest.fixture(scope="session", autouse=True)
def _matrix_summary() -> Iterator[None]:
    yield
    if MATRIX_CELLS:
        print(f"\npolicy matrix: {sum(MATRIX_CELLS.values())} cells")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MATRIX_CELLS:
        per_backend = ", ".join(f"{b}: {n}" for b, n in sorted(MATRIX_CELLS.items()))
        terminalreporter.write_line(
            f"policy matrix: {sum(MATRIX_CELLS.values())} cells ({per_backend})"
        )
