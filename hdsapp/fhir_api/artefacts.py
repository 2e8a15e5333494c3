"""The conformance artefacts (JSON files of the repository's ``fhir/`` folder), wherever they are.

In a checkout they are ``<repo>/fhir``; in an installed wheel, hatch's force-include put them
in ``hdsapp/_fhir_artefacts`` (pyproject.toml). ``fhir/`` holds no Python (DESIGN.md §3): this
module is the one way to read it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hdsapp

INSTALLED = Path(hdsapp.__file__).resolve().parent / "_fhir_artefacts"
CHECKOUT = Path(__file__).resolve().parents[2] / "fhir"
BASE_CAPABILITY = "CapabilityStatement-base.json"
SEARCH_PARAMETERS = "SearchParameter"


class ArtefactsMissing(RuntimeError):
    pass


def locate(candidates: Sequence[Path] = (INSTALLED, CHECKOUT)) -> Path:
    """The first folder that holds the base CapabilityStatement."""
    for folder in candidates:
        if (folder / BASE_CAPABILITY).is_file():
            return folder
    raise ArtefactsMissing("FHIR artefacts not found in " + ", ".join(str(c) for c in candidates))


@functools.cache
def folder() -> Path:
    return locate()


def read(relative: str, *, root: Path | None = None) -> dict[str, Any]:
    """One artefact, parsed (a fresh copy each time: callers may change it)."""
    path = (root or folder()) / relative
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def search_parameters(*, root: Path | None = None) -> list[dict[str, Any]]:
    """Every SearchParameter definition, sorted by file name."""
    directory = (root or folder()) / SEARCH_PARAMETERS
    return [
        json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.json"))
    ]
