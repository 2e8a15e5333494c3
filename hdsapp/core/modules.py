"""Find each domain's modules of one kind (endpoints, tasks, commands) by convention.

Every domain package has the same files; discovering them by name keeps registration in one
place and lets domains be added without editing a shared list.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from types import ModuleType

import hdsapp


def domain_modules(name: str) -> list[ModuleType]:
    """``hdsapp.<domain>.<name>`` for every domain that has one, in a stable order."""
    found = []
    for package in sorted(pkgutil.iter_modules(hdsapp.__path__), key=lambda m: m.name):
        if not package.ispkg:
            continue
        spec = importlib.util.find_spec(f"hdsapp.{package.name}.{name}")
        if spec is not None:
            found.append(importlib.import_module(spec.name))
    return found


def domain_module_names(name: str) -> list[str]:
    return [module.__name__ for module in domain_modules(name)]
