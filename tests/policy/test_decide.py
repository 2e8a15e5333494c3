"""The decision function on its own: deny by default, 404 outside the caller's groups, the
operator never on clinical data, scopes, conditions; and lists agree with single decisions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import tomllib
import uuid
from types import MappingProxyType
from typing import Any

import pytest

from hdsapp.core.actor import ALL_SCOPES, Actor, RequestInfo, Role, Scope, anonymous, system_actor
from hdsapp.policy import (
    ALL_GROUPS,
    Context,
    Resource,
    ResourceType,
    TableError,
    decide,
    load_table,
    row_plan,
    table_text,
)
from hdsapp.policy.decide import ROW_CHECKS
from hdsapp.policy.table import parse_table

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
CONTEXT = Context(now=NOW, step_up_seconds=300)
REQUEST = RequestInfo(request_id="test-request")
GROUP, OTHER = uuid.uuid4(), uuid.uuid4()


def actor(
    role: Role | None = None,
    *,
    kind: str = "user",
    scopes: frozenset[Scope] = ALL_SCOPES,
    operator: bool = False,
    authenticated_at: dt.datetime | None = None,
) -> Actor:
    return Actor(
        kind=kind,  # type: ignore[arg-type]
        request=REQUEST,
        user_id=uuid.uuid4(),
        memberships=MappingProxyType({GROUP: role} if role else {}),
        scopes=scopes,
        is_operator=operator,
        authenticated_at=authenticated_at,
    )


def patient(group: uuid.UUID = GROUP, *, opposed: bool = False) -> Resource:
    return Resource(type=ResourceType.PATIENT, group_id=group, opposition_applies=opposed)


def test_a_clinician_reads_a_patient_of_the_group() -> None:
    decision = decide(actor(Role.CLINICIAN), "patient.read", patient(), CONTEXT)
    assert decision.allowed
    assert decision.legal_basis == "care-team"


def test_another_group_is_404_and_a_forbidden_action_403() -> None:
    clinician = actor(Role.CLINICIAN)
    assert decide(clinician, "patient.read", patient(OTHER), CONTEXT).status == 404
    refused = decide(
        clinician, "member.remove", Resource(type=ResourceType.MEMBERSHIP, group_id=GROUP), CONTEXT
    )
    assert (refused.allowed, refused.status, refused.reason) == (False, 403, "role")


def test_an_opposition_denies_with_403() -> None:
    decision = decide(actor(Role.CLINICIAN), "patient.read", patient(opposed=True), CONTEXT)
    assert (decision.allowed, decision.status, decision.reason) == (False, 403, "opposition")


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.AUDITOR])
def test_coordinators_and_auditors_see_no_patient(role: Role) -> None:
    for action in ("patient.read", "patient.search", "patient.create", "opposition.list"):
        assert decide(actor(role), action, patient(), CONTEXT).status == 403


def test_the_operator_never_reaches_clinical_content() -> None:
    operator = actor(operator=True)
    assert decide(operator, "patient.read", patient(), CONTEXT).status == 404
    # Even holding a clinician membership.
    member = actor(Role.CLINICIAN, operator=True)
    decision = decide(member, "patient.read", patient(), CONTEXT)
    assert (decision.status, decision.reason) == (403, "operator-has-no-clinical-access")
    assert decide(system_actor(), "patient.read", patient(), CONTEXT).status == 404
    group = Resource(type=ResourceType.GROUP, group_id=GROUP)
    assert decide(operator, "group.read", group, CONTEXT).allowed
    assert decide(operator, "group.create", Resource(type=ResourceType.GROUP), CONTEXT).allowed


def test_token_scopes_limit_what_it_can_do() -> None:
    reader = actor(Role.CLINICIAN, kind="token", scopes=frozenset({Scope.READ}))
    assert decide(reader, "patient.read", patient(), CONTEXT).allowed
    refused = decide(reader, "patient.create", patient(), CONTEXT)
    assert (refused.status, refused.reason) == (403, "insufficient-scope")


def test_anonymous_callers_are_denied() -> None:
    nobody = anonymous(REQUEST)
    assert decide(nobody, "patient.read", patient(), CONTEXT).reason == "unauthenticated"
    assert not decide(nobody, "group.list", Resource(type=ResourceType.GROUP), CONTEXT).allowed


def test_a_role_change_needs_a_recent_authentication_in_a_browser_session() -> None:
    membership = Resource(type=ResourceType.MEMBERSHIP, group_id=GROUP)
    stale = actor(Role.COORDINATOR, authenticated_at=NOW - dt.timedelta(hours=1))
    fresh = actor(Role.COORDINATOR, authenticated_at=NOW - dt.timedelta(seconds=10))
    token = actor(Role.COORDINATOR, kind="token", authenticated_at=NOW)
    assert decide(stale, "member.change_role", membership, CONTEXT).reason == "step-up-required"
    assert decide(fresh, "member.change_role", membership, CONTEXT).allowed
    assert decide(token, "member.change_role", membership, CONTEXT).reason == "step-up-required"


def test_unknown_actions_and_wrong_resource_types_are_denied() -> None:
    clinician = actor(Role.CLINICIAN)
    assert decide(clinician, "patient.delete", patient(), CONTEXT).reason == "unknown-action"
    group = Resource(type=ResourceType.GROUP, group_id=GROUP)
    assert decide(clinician, "patient.read", group, CONTEXT).reason == "wrong-resource-type"


def _resources(kind: ResourceType, group: uuid.UUID) -> list[Resource]:
    """The resource in every combination of its boolean facts (opposition, invitee, ...)."""
    facts = [f.name for f in dataclasses.fields(Resource) if f.type in {"bool", bool}]
    base = Resource(type=kind, group_id=group)
    return [
        dataclasses.replace(base, **dict[str, Any](zip(facts, values, strict=True)))
        for values in itertools.product((False, True), repeat=len(facts))
    ]


def test_row_plans_agree_with_decide() -> None:
    for who in (
        actor(Role.CLINICIAN),
        actor(Role.COORDINATOR),
        actor(Role.AUDITOR),
        actor(operator=True),
        actor(Role.CLINICIAN, kind="token", scopes=frozenset({Scope.AUDIT})),
        anonymous(REQUEST),
    ):
        for action in load_table().actions:
            plan = row_plan(who, action, CONTEXT)
            kind = load_table().actions[action].resource
            for group in (GROUP, OTHER):
                for resource in _resources(kind, group):
                    alternatives = plan.groups.get(group, ()) + plan.groups.get(ALL_GROUPS, ())
                    visible = any(
                        all(ROW_CHECKS[c](resource) for c in conditions)
                        for conditions in alternatives
                    )
                    assert visible == decide(who, action, resource, CONTEXT).allowed, (
                        who,
                        action,
                        resource,
                    )


def test_the_table_refuses_inconsistencies() -> None:
    raw = tomllib.loads(table_text())
    raw["rules"].append(
        {"action": "patient.read", "principals": ["clinician"], "legal_basis": "nonexistent"}
    )
    with pytest.raises(TableError):
        parse_table(raw)
    raw = tomllib.loads(table_text())
    raw["rules"].append(
        {"action": "patient.fly", "principals": ["clinician"], "legal_basis": "care-team"}
    )
    with pytest.raises(TableError):
        parse_table(raw)
    raw = tomllib.loads(table_text())
    raw["rules"][0]["when"] = ["full_moon"]
    with pytest.raises(TableError):
        parse_table(raw)
