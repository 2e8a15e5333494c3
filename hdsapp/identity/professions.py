"""The national list of health professions (TRE_G15), kept as data in ``professions.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType

DATA_FILE = Path(__file__).with_name("professions.json")


@cache
def professions() -> Mapping[str, str]:
    """Profession code -> French label, e.g. ``"10" -> "Médecin"``."""
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return MappingProxyType(dict(data["professions"]))


@cache
def system() -> str:
    """The code system URL of the list (for FHIR ``Practitioner.qualification``)."""
    value: str = json.loads(DATA_FILE.read_text(encoding="utf-8"))["system"]
    return value


def label(code: str | None) -> str | None:
    return None if code is None else professions().get(code)


def is_known(code: str) -> bool:
    return code in professions()
