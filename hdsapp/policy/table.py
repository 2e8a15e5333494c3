"""The authorization table (``rules.toml``), loaded once and checked for consistency.

Pure data: no database, no web framework. ``load_table()`` refuses a table that names an unknown
action, principal, condition or scope, so a typo fails at import time rather than denying (or
allowing) silently.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from hdsapp.core.actor import Scope

TABLE_FILE = "rules.toml"


class ResourceType(StrEnum):
    GROUP = "group"
    MEMBERSHIP = "membership"
    INVITATION = "invitation"
    PATIENT = "patient"
    OPPOSITION = "opposition"
    AUDIT = "audit"
    THREAD = "thread"
    PARTICIPANT = "participant"
    MESSAGE = "message"
    ATTACHMENT = "attachment"
    TASK = "task"
    GRANT = "grant"


class Principal(StrEnum):
    CLINICIAN = "clinician"
    COORDINATOR = "coordinator"
    AUDITOR = "auditor"
    OPERATOR = "operator"
    AUTHENTICATED = "authenticated"


class ConditionLevel(StrEnum):
    ROW = "row"  # depends on the resource's state: also a SQL predicate in list queries
    ACTOR = "actor"  # depends on the caller only: decided before any query


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    name: str
    level: ConditionLevel
    description: str
    deny_reason: str


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    resource: ResourceType
    scope: Scope
    tenant: bool
    clinical: bool
    rows: str | None
    http: str


@dataclass(frozen=True, slots=True)
class Rule:
    action: str
    principals: frozenset[Principal]
    when: tuple[str, ...]
    legal_basis: str


@dataclass(frozen=True, slots=True)
class Table:
    actions: Mapping[str, ActionSpec]
    conditions: Mapping[str, ConditionSpec]
    legal_bases: Mapping[str, str]
    rules: tuple[Rule, ...]

    def rules_for(self, action: str) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.action == action)


class TableError(ValueError):
    """rules.toml is inconsistent."""


def parse_table(raw: Mapping[str, Any]) -> Table:
    if raw.get("version") != 1:
        raise TableError("unsupported table version")
    conditions = {
        name: ConditionSpec(
            name=name,
            level=ConditionLevel(spec["level"]),
            description=str(spec["description"]),
            deny_reason=str(spec["deny_reason"]),
        )
        for name, spec in raw.get("conditions", {}).items()
    }
    actions = {
        name: ActionSpec(
            name=name,
            resource=ResourceType(spec["resource"]),
            scope=Scope(spec["scope"]),
            tenant=_bool(spec, "tenant"),
            clinical=_bool(spec, "clinical"),
            rows=spec.get("rows"),
            http=str(spec["http"]),
        )
        for name, spec in raw.get("actions", {}).items()
    }
    legal_bases = {str(code): str(text) for code, text in raw.get("legal_bases", {}).items()}
    rules: list[Rule] = []
    for entry in raw.get("rules", []):
        action = entry["action"]
        if action not in actions:
            raise TableError(f"rule for unknown action {action!r}")
        when = tuple(entry.get("when", ()))
        unknown = [c for c in when if c not in conditions]
        if unknown:
            raise TableError(f"rule for {action!r} uses unknown conditions {unknown}")
        principals = frozenset(Principal(p) for p in entry["principals"])
        if not principals:
            raise TableError(f"rule for {action!r} names no principal")
        legal_basis = str(entry.get("legal_basis", ""))
        if legal_basis not in legal_bases:
            raise TableError(f"rule for {action!r} has no known legal basis")
        rules.append(Rule(action, principals, when, legal_basis))
    for spec in actions.values():
        if spec.rows is not None and spec.rows not in actions:
            raise TableError(f"{spec.name!r} lists rows of unknown action {spec.rows!r}")
        if spec.clinical and not spec.tenant:
            raise TableError(f"clinical action {spec.name!r} must belong to a group")
    return Table(
        actions=MappingProxyType(actions),
        conditions=MappingProxyType(conditions),
        legal_bases=MappingProxyType(legal_bases),
        rules=tuple(rules),
    )


def _bool(spec: Mapping[str, Any], key: str) -> bool:
    value = spec[key]
    if type(value) is not bool:
        raise TableError(f"{key} must be true or false")
    return value


def table_text() -> str:
    return resources.files("hdsapp.policy").joinpath(TABLE_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def load_table() -> Table:
    return parse_table(tomllib.loads(table_text()))
