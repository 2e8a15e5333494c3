"""Where the shared test data lives: ../shared/testdata next to the repository root. Missing
data fails the run rather than skipping tests."""

import json
from pathlib import Path
from typing import Any

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
MERKLE = TESTDATA / "merkle"


def load(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"shared test data missing: {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def probes(kind: str) -> list[Path]:
    """Every transparency-dev probe file of one kind ("inclusion" or "consistency")."""
    found = sorted((MERKLE / "transparency-dev-testdata" / kind).rglob("*.json"))
    if not found:
        raise FileNotFoundError(f"no transparency-dev {kind} probes under {MERKLE}")
    return found
