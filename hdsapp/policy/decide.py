"""The authorization decision: one pure function over the table, deny by default.

``decide(actor, action, resource, context)`` answers for one resource; ``row_plan(actor, action,
context)`` answers the same question for every row a list query may return, as data the
repository turns into SQL (so lists filter in the database, with the same rules). Both go through
``_alternatives``, so they cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from hdsapp.core.actor import Actor
from hdsapp.policy.table import (
    ActionSpec,
    Principal,
    ResourceType,
    Rule,
    TableError,
    load_table,
)

DEFAULT_STEP_UP_SECONDS = 300.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Resource:
    """What the policy needs to know about the object acted on; computed by the service.

    ``opposition_applies``: an active opposition of the patient covers the caller.
    ``addressed_to_actor``: the invitation names the caller (email or RPPS).
    ``participant``: the caller is a current participant of the thread (threads, and the
    participants, messages, attachments and tasks of a thread).
    ``break_glass_active``: the caller holds an unexpired break-the-glass grant on the thread.
    ``thread_open``: the thread's status is "open".
    """

    type: ResourceType
    group_id: uuid.UUID | None = None
    id: uuid.UUID | None = None
    opposition_applies: bool = False
    addressed_to_actor: bool = False
    participant: bool = False
    break_glass_active: bool = False
    thread_open: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Context:
    now: dt.datetime
    step_up_seconds: float = DEFAULT_STEP_UP_SECONDS


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    legal_basis: str | None = None
    status: Literal[403, 404] | None = None

    def __bool__(self) -> bool:
        return self.allowed


def _allow(legal_basis: str) -> Decision:
    return Decision(allowed=True, reason="allowed", legal_basis=legal_basis)


def _deny(reason: str, status: Literal[403, 404] = 403) -> Decision:
    return Decision(allowed=False, reason=reason, status=status)


# Row-level conditions, evaluated on a Resource. Actor-level ones are evaluated in _alternatives.
RowCheck = Callable[[Resource], bool]
ROW_CHECKS: Mapping[str, RowCheck] = MappingProxyType(
    {
        "no_opposition": lambda resource: not resource.opposition_applies,
        "invitee": lambda resource: resource.addressed_to_actor,
        "participant": lambda resource: resource.participant,
        "not_participant": lambda resource: not resource.participant,
        "break_glass": lambda resource: resource.break_glass_active,
        "thread_open": lambda resource: resource.thread_open,
    }
)
ActorCheck = Callable[[Actor, Context], bool]
ACTOR_CHECKS: Mapping[str, ActorCheck] = MappingProxyType(
    {
        # As hdsapp.identity.service.require_recent_authentication: a browser session that
        # authenticated recently; a token never passes; operator commands (system) do.
        "recent_authentication": lambda actor, context: (
            actor.kind == "system"
            or (
                actor.kind == "user"
                and actor.authenticated_within(context.step_up_seconds, now=context.now)
            )
        ),
    }
)


@dataclass(frozen=True, slots=True)
class _Alternatives:
    """Either a denial, or the rules' row-condition sets (any one set suffices)."""

    denial: Decision | None
    options: tuple[tuple[frozenset[str], str], ...] = ()  # (row conditions, legal basis)


def _principals(actor: Actor, group_id: uuid.UUID | None) -> set[Principal]:
    found = {Principal.AUTHENTICATED}
    if actor.is_operator:
        found.add(Principal.OPERATOR)
    if group_id is not None:
        role = actor.role_in(group_id)
        if role is not None:
            found.add(Principal(role.value))
    return found


def _in_tenant(actor: Actor, spec: ActionSpec, group_id: uuid.UUID | None) -> bool:
    if not spec.tenant:
        return True
    if group_id is not None and actor.role_in(group_id) is not None:
        return True
    return actor.is_operator and not spec.clinical


def _alternatives(
    actor: Actor, action: str, group_id: uuid.UUID | None, context: Context
) -> _Alternatives:
    table = load_table()
    spec = table.actions.get(action)
    if spec is None:
        return _Alternatives(_deny("unknown-action"))
    if not actor.is_authenticated or actor.kind == "anonymous":
        return _Alternatives(_deny("unauthenticated", 404 if spec.tenant else 403))
    if not _in_tenant(actor, spec, group_id):
        return _Alternatives(_deny("not-in-group", 404))
    if spec.clinical and actor.is_operator:
        return _Alternatives(_deny("operator-has-no-clinical-access"))
    if not actor.has_scope(spec.scope):
        return _Alternatives(_deny("insufficient-scope"))
    principals = _principals(actor, group_id)
    matching: list[Rule] = [r for r in table.rules_for(action) if r.principals & principals]
    if not matching:
        return _Alternatives(_deny("role"))
    options: list[tuple[frozenset[str], str]] = []
    first_failure: str | None = None
    for rule in matching:
        failed = [c for c in rule.when if c in ACTOR_CHECKS and not ACTOR_CHECKS[c](actor, context)]
        if failed:
            first_failure = first_failure or table.conditions[failed[0]].deny_reason
            continue
        options.append((frozenset(c for c in rule.when if c in ROW_CHECKS), rule.legal_basis))
    if not options:
        return _Alternatives(_deny(first_failure or "role"))
    return _Alternatives(None, tuple(options))


def decide(actor: Actor, action: str, resource: Resource, context: Context) -> Decision:
    """May ``actor`` do ``action`` on ``resource``? Deny by default."""
    spec = load_table().actions.get(action)
    if spec is not None and spec.resource != resource.type:
        return _deny("wrong-resource-type")
    alternatives = _alternatives(actor, action, resource.group_id, context)
    if alternatives.denial is not None:
        return alternatives.denial
    first_failure: str | None = None
    for conditions, legal_basis in alternatives.options:
        failed = sorted(c for c in conditions if not ROW_CHECKS[c](resource))
        if not failed:
            return _allow(legal_basis)
        first_failure = first_failure or load_table().conditions[failed[0]].deny_reason
    return _deny(first_failure or "role")


# -- lists -------------------------------------------------------------------------------------

ALL_GROUPS: Literal["*"] = "*"


@dataclass(frozen=True, kw_only=True, slots=True)
class RowPlan:
    """Which rows of ``action``'s resource the caller may see, as data for a SQL builder.

    ``groups`` maps a group id (or ``ALL_GROUPS``) to alternative sets of row conditions: a row of
    that group is visible when every condition of at least one set holds. An empty set means
    "every row of the group". No entry: no row of the group is visible.
    """

    action: str
    groups: Mapping[uuid.UUID | Literal["*"], tuple[frozenset[str], ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def empty(self) -> bool:
        return not self.groups


def row_plan(actor: Actor, action: str, context: Context) -> RowPlan:
    """The visibility of every row of ``action`` (e.g. "patient.read") for ``actor``."""
    table = load_table()
    spec = table.actions.get(action)
    if spec is None:
        return RowPlan(action=action)
    groups: dict[uuid.UUID | Literal["*"], tuple[frozenset[str], ...]] = {}
    candidates: list[uuid.UUID | None] = list(actor.memberships)
    if not spec.tenant or (actor.is_operator and not spec.clinical):
        candidates.append(None)  # rows of any group, through non-membership principals
    for group_id in candidates:
        alternatives = _alternatives(actor, action, group_id, context)
        if alternatives.denial is None:
            key: uuid.UUID | Literal["*"] = ALL_GROUPS if group_id is None else group_id
            groups[key] = tuple(conditions for conditions, _ in alternatives.options)
    return RowPlan(action=action, groups=MappingProxyType(groups))


def row_conditions_in_use() -> dict[ResourceType, set[str]]:
    """Which row conditions each resource type's rules use (its SQL builder must know them)."""
    table = load_table()
    used: dict[ResourceType, set[str]] = {}
    for rule in table.rules:
        resource = table.actions[rule.action].resource
        used.setdefault(resource, set()).update(c for c in rule.when if c in ROW_CHECKS)
    return used


def route_action(action: str, *also: str) -> dict[str, object]:
    """``openapi_extra`` for a route: declares its policy action (checked at start-up), and the
    other actions its use case may also ask for (e.g. a role change within a member update)."""
    for name in (action, *also):
        if name not in load_table().actions:
            raise ValueError(f"unknown policy action {name!r}")
    declaration: dict[str, object] = {"x-hds-action": action}
    if also:
        declaration["x-hds-also"] = list(also)
    return declaration


PUBLIC_ROUTE: Mapping[str, object] = MappingProxyType({"x-hds-public": True})


def _check_conditions() -> None:
    conditions = load_table().conditions
    for name, spec in conditions.items():
        checks = ROW_CHECKS if spec.level == "row" else ACTOR_CHECKS
        if name not in checks:
            raise TableError(f"condition {name!r} ({spec.level}) has no implementation")
    extra = (set(ROW_CHECKS) | set(ACTOR_CHECKS)) - set(conditions)
    if extra:
        raise TableError(f"conditions implemented but not in the table: {sorted(extra)}")


_check_conditions()
