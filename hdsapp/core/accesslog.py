"""The one audit mechanism: every access to protected data appends one entry to the log.

Use it around a use case::

    with audited(session, database, actor, Access(kind="read", action="R", group_id=gid,
                                                  resource_type="Communication")) as scope:
        message = repository.get(...)          # NotFound / Forbidden propagate: DENIED entry
        scope.patient_id = message.patient_id  # refine what the entry says
        scope.resource_id = str(message.id)
        return ...                             # normal exit: SUCCESS entry, same transaction

- ``record(session, actor, access)`` appends in the caller's transaction: the entry commits
  or rolls back with the business data, and a read whose entry cannot be written fails.
- ``record_separately(database, actor, access)`` appends in a transaction of its own, so a
  denied attempt or a failed login survives the caller's rollback.
- ``audited(...)`` does one of them exactly once per use case: on normal exit ``record``
  (a failure to record becomes ``ServiceUnavailable``, 503, and nothing is returned); if the
  body raises ``Forbidden``, ``NotFound`` or ``Unauthenticated``, a DENIED entry through
  ``record_separately``; any other error, a FAILED entry the same way; then it re-raises.

An entry is a FHIR R4 AuditEvent following IHE BALP (../shared/reference/audit-codes.md),
built as plain dicts, stored as its RFC 8785 canonical JSON with a random nonce, and made a
leaf of the RFC 9162 tree of the ``audit`` library (audit/leaf.py). The leaf carries no
health data.

Positions are gap-free from 0: the next position is read from the one ``audit_head`` row
under a lock (PostgreSQL ``SELECT ... FOR UPDATE``; SQLite transactions already start with
``BEGIN IMMEDIATE``), never from a sequence. The lock is held until the transaction ends, so
``audited`` records at the very end of the use case.

``record_separately`` never waits on a lock held by this process (that would deadlock when
the caller's own transaction holds it): if a session of this process holds the log's lock —
on SQLite, any open transaction on the same file; on PostgreSQL, a transaction that has
already appended — the entry is written in its own transaction right after that one ends,
committed or rolled back, before the request's response is sent; it then returns
``DEFERRED`` instead of the position.

Two modes (``HDS_AUDIT_MODE``). ``simple``: as above, one head lock per append, held to the
commit, so appends are serialised by one durable commit each. ``sequencer``: ``record`` and
``record_separately`` insert into ``audit_pending`` in the caller's (or their own)
transaction, with no shared lock, so concurrent commits share their disk flushes; ``sequence``
(run by the checkpoint task every second, one sequencer at a time) moves batches into the log
at contiguous positions, one transaction per batch. The entry is durable with its request
either way; in sequencer mode it gets its position, and is signed, within the second, and
``record`` returns ``DEFERRED``.

Routes that reach protected data declare ``openapi_extra=AUDITED_ROUTE``;
tests/test_routes_audited.py checks that each of them appends exactly one entry per call.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col

from audit.compact_range import CompactRange
from audit.leaf import NONCE_SIZE, Leaf, new_nonce
from audit.merkle import leaf_hash, node_hash
from hdsapp.config import get_settings
from hdsapp.core.actor import Actor
from hdsapp.core.db import Database, utcnow
from hdsapp.core.errors import (
    Forbidden,
    HdsError,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
)
from hdsapp.models.audit_entry import AuditEntry
from hdsapp.models.audit_head import HEAD_ID, AuditHead
from hdsapp.models.audit_node import AuditNode
from hdsapp.models.audit_pending import AuditPending

log = logging.getLogger(__name__)

#: What ``record_separately`` returns when the entry is written after the caller's
#: transaction ends (see the module docstring).
DEFERRED: Final = -1

#: ``openapi_extra`` of every route that reaches protected data: it is audited.
AUDITED_ROUTE: Final[dict[str, Any]] = {"x-hds-audited": True}

Action = Literal["C", "R", "U", "D", "E"]
ACTIONS: Final = frozenset({"C", "R", "U", "D", "E"})
_KIND = re.compile(r"[a-z0-9._-]{1,32}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Outcome(IntEnum):
    """FHIR R4 AuditEvent.outcome."""

    SUCCESS = 0
    DENIED = 4
    FAILED = 8


@dataclass(frozen=True, kw_only=True)
class Access:
    """What one use case did, as the audit log records it. Never health data: ids, codes,
    and the query string of a search."""

    kind: str  # "read", "search", "create", "update", "delete", "login", "logout", "export",
    # "break-glass", "token", "audit-query", ... ([a-z0-9._-], at most 32: the leaf's kind)
    action: Action
    outcome: Outcome = Outcome.SUCCESS
    outcome_desc: str | None = None  # short machine reason, e.g. "policy:not-participant"
    group_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    purpose_of_use: str = "TREAT"  # v3-ActReason; ETREAT for break-the-glass
    legal_basis: str | None = None  # "care-team", "consent", "emergency", ...
    reason: str | None = None  # stated reason (break-the-glass)
    query: str | None = None  # the search string; base64 in entity[query].query (BALP)
    result_refs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _KIND.fullmatch(self.kind):
            raise ValueError(f"audit kind {self.kind!r} is not 1 to 32 of [a-z0-9._-]")
        if self.action not in ACTIONS:
            raise ValueError(f"audit action {self.action!r} is not one of C, R, U, D, E")
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        object.__setattr__(self, "result_refs", tuple(self.result_refs))


@dataclass(kw_only=True)
class AuditScope:
    """What the body of ``audited`` may refine before the entry is written."""

    group_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    purpose_of_use: str = "TREAT"
    legal_basis: str | None = None
    reason: str | None = None
    query: str | None = None
    outcome_desc: str | None = None
    result_refs: Sequence[str] = field(default_factory=tuple)

    @classmethod
    def of(cls, access: Access) -> AuditScope:
        return cls(**{f.name: getattr(access, f.name) for f in dataclasses.fields(cls)})

    def applied_to(self, access: Access, **changes: Any) -> Access:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["result_refs"] = tuple(values["result_refs"])
        return dataclasses.replace(access, **{**values, **changes})


# -- the AuditEvent -------------------------------------------------------------------------

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SECURITY_ROLE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
BALP_PROFILE = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
NETWORK_TYPE_IP, NETWORK_TYPE_NAME = "2", "1"
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"
URI_IDENTIFIER = "urn:ietf:rfc:3986"
GROUP_ROLE = "urn:hdsapp:group-role"
LEGAL_BASIS_PREFIX = "urn:hdsapp:legal-basis:"
OBSERVER = "hdsapp"

_Coding = dict[str, str]


def _coding(system: str, code: str, display: str | None = None) -> _Coding:
    return {"system": system, "code": code} | ({"display": display} if display else {})


@dataclass(frozen=True)
class Pattern:
    """How one kind of access renders in BALP (reference/audit-codes.md, "Patterns")."""

    type: _Coding
    subtype: tuple[_Coding, ...]
    user: _Coding
    client: _Coding
    server: _Coding
    profile: str | None = None  # BALP profile, "Patient" prefixed when a patient is involved


_SOURCE_ROLE = _coding(DCM, "110153", "Source Role ID")
_DEST_ROLE = _coding(DCM, "110152", "Destination Role ID")
_APPLICATION = _coding(DCM, "110150", "Application")
_IRCP = _coding(PARTICIPATION, "IRCP", "information recipient")
_AUT = _coding(PARTICIPATION, "AUT", "author (originator)")
_CST = _coding(PARTICIPATION, "CST", "custodian")
_HUMAN = _coding(SECURITY_ROLE, "humanuser", "human user")
_REST = _coding(EVENT_TYPE, "rest", "Restful Operation")
_USER_AUTH = _coding(DCM, "110114", "User Authentication")


def _rest(interaction: str, user: _Coding, profile: str | None) -> Pattern:
    client, server = (_DEST_ROLE, _SOURCE_ROLE) if user is _IRCP else (_SOURCE_ROLE, _DEST_ROLE)
    return Pattern(_REST, (_coding(RESTFUL, interaction),), user, client, server, profile)


PATTERNS: Final[Mapping[str, Pattern]] = {
    "read": _rest("read", _IRCP, "Read"),
    "search": _rest("search-type", _IRCP, "Query"),
    "create": _rest("create", _AUT, "Create"),
    "update": _rest("update", _AUT, "Update"),
    "delete": Pattern(_REST, (_coding(RESTFUL, "delete"),), _AUT, _APPLICATION, _CST, "Delete"),
    "login": Pattern(
        _USER_AUTH, (_coding(DCM, "110122", "Login"),), _HUMAN, _DEST_ROLE, _SOURCE_ROLE
    ),
    "logout": Pattern(
        _USER_AUTH, (_coding(DCM, "110123", "Logout"),), _HUMAN, _DEST_ROLE, _SOURCE_ROLE
    ),
    "token": Pattern(_USER_AUTH, (), _HUMAN, _DEST_ROLE, _SOURCE_ROLE),
    "export": Pattern(
        _coding(DCM, "110106", "Export"),
        (_coding(LIFECYCLE, "disclose", "Disclose Record Lifecycle Event"),),
        _IRCP,
        _DEST_ROLE,
        _SOURCE_ROLE,
    ),
    # DCM 110127 "Emergency Override Started" and 110101 "Audit Log Used" come from DICOM
    # PS3.16 CID 401/400; audit-codes.md marks them unverified.
    "break-glass": Pattern(
        _coding(DCM, "110113", "Security Alert"),
        (_coding(DCM, "110127", "Emergency Override Started"),),
        _IRCP,
        _DEST_ROLE,
        _SOURCE_ROLE,
    ),
    "audit-query": Pattern(
        _coding(DCM, "110101", "Audit Log Used"),
        (_coding(RESTFUL, "search-type"),),
        _IRCP,
        _DEST_ROLE,
        _SOURCE_ROLE,
    ),
}
_BY_ACTION: Final[Mapping[str, Pattern]] = {
    "C": PATTERNS["create"],
    "R": PATTERNS["read"],
    "U": PATTERNS["update"],
    "D": PATTERNS["delete"],
    "E": _rest("operation", _IRCP, None),
}


def pattern_for(access: Access) -> Pattern:
    return PATTERNS.get(access.kind) or _BY_ACTION[access.action]


def _text(value: str | None, limit: int) -> str | None:
    """A FHIR string: no control characters, no surrounding space, not empty, bounded."""
    if value is None:
        return None
    cleaned = _CONTROL.sub("?", value).strip()[:limit].strip()
    return cleaned or None


_HOSTNAME = _text(socket.gethostname(), 200) or "localhost"


def format_instant(moment: dt.datetime) -> str:
    """A FHIR instant in UTC with milliseconds, as the leaf keeps it."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _who(actor: Actor) -> dict[str, Any]:
    if actor.idnps or actor.rpps:
        idnps = actor.idnps or f"8{actor.rpps}"
        return {"identifier": {"system": IDNPS, "value": idnps}}
    if actor.user_id is not None:
        return {"identifier": {"system": URI_IDENTIFIER, "value": f"urn:uuid:{actor.user_id}"}}
    return {"display": "anonymous" if actor.kind == "anonymous" else "hdsapp (system)"}


def _user_agent(actor: Actor, access: Access, pattern: Pattern) -> dict[str, Any]:
    agent: dict[str, Any] = {"type": {"coding": [pattern.user]}, "who": _who(actor)}
    if actor.user_id is not None:
        agent["altId"] = str(actor.user_id)
    roles: list[dict[str, Any]] = []
    if actor.kind == "user" and pattern.user is not _HUMAN:
        roles.append({"coding": [_HUMAN]})
    if access.group_id is not None and (role := actor.role_in(access.group_id)) is not None:
        roles.append({"coding": [_coding(GROUP_ROLE, str(role))]})
    if profession := _text(actor.profession, 64):
        roles.append({"text": profession})
    if roles:
        agent["role"] = roles
    agent["requestor"] = True
    policies = []
    if access.legal_basis:
        policies.append(LEGAL_BASIS_PREFIX + access.legal_basis)
    if actor.token_id is not None:
        policies.append(f"urn:uuid:{actor.token_id}")  # BALP: the token's id, never the token
    if policies:
        agent["policy"] = policies
    return agent


def _client_agent(actor: Actor, pattern: Pattern) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [pattern.client]},
        "who": {"display": _text(actor.request.user_agent, 256) or "unknown client"},
        "requestor": False,
    }
    address = _text(actor.request.client_ip, 64)
    if address:
        agent["network"] = {"address": address, "type": NETWORK_TYPE_IP}
    return agent


def _server_agent(pattern: Pattern) -> dict[str, Any]:
    return {
        "type": {"coding": [pattern.server]},
        "who": {"display": _HOSTNAME},
        "requestor": False,
        "network": {"address": _HOSTNAME, "type": NETWORK_TYPE_NAME},
    }


def _entity(type_code: str, role: str | None = None, **fields: Any) -> dict[str, Any]:
    entity: dict[str, Any] = dict(fields)
    entity["type"] = _coding(ENTITY_TYPE, type_code)
    if role is not None:
        entity["role"] = _coding(OBJECT_ROLE, role)
    return entity


def _entities(actor: Actor, access: Access) -> list[dict[str, Any]]:
    entities = []
    if access.patient_id is not None:
        entities.append(_entity("1", "1", what={"reference": f"Patient/{access.patient_id}"}))
    if access.resource_type and access.resource_id:
        reference = f"{access.resource_type}/{access.resource_id}"
        entities.append(_entity("2", "4", what={"reference": reference}))
    if access.query is not None:
        encoded = base64.b64encode(access.query.encode()).decode("ascii")
        entities.append(_entity("2", "24", query=encoded))
    entities.extend(_entity("2", "4", what={"reference": ref}) for ref in access.result_refs)
    if access.group_id is not None:
        entities.append(
            _entity("2", what={"reference": f"Organization/{access.group_id}"}, name="care group")
        )
    request_id = _text(actor.request.request_id, 128) or "unknown"
    entities.append(
        {
            "what": {"identifier": {"value": request_id}},
            "type": _coding(BALP_ENTITY, "XrequestId"),
        }
    )
    return entities


def build_event(
    actor: Actor, access: Access, *, recorded: dt.datetime, event_id: uuid.UUID
) -> dict[str, Any]:
    """The FHIR R4 AuditEvent of one access (IHE BALP), as JSON-ready dicts."""
    pattern = pattern_for(access)
    event: dict[str, Any] = {"resourceType": "AuditEvent", "id": str(event_id)}
    if pattern.profile and access.outcome is Outcome.SUCCESS:
        prefix = "Patient" if access.patient_id is not None else ""
        event["meta"] = {"profile": [BALP_PROFILE + prefix + pattern.profile]}
    event["type"] = pattern.type
    if pattern.subtype:
        event["subtype"] = list(pattern.subtype)
    event["action"] = access.action
    event["recorded"] = format_instant(recorded)
    event["outcome"] = str(int(access.outcome))
    if desc := _text(access.outcome_desc, 200):
        event["outcomeDesc"] = desc
    purpose: dict[str, Any] = {"coding": [_coding(ACT_REASON, access.purpose_of_use)]}
    if reason := _text(access.reason, 1000):
        purpose["text"] = reason
    event["purposeOfEvent"] = [purpose]
    event["agent"] = [
        _user_agent(actor, access, pattern),
        _client_agent(actor, pattern),
        _server_agent(pattern),
    ]
    event["source"] = {
        "site": _HOSTNAME,
        "observer": {"display": OBSERVER},
        "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
    }
    event["entity"] = _entities(actor, access)
    return event


def canonical_json(event: Mapping[str, Any]) -> bytes:
    """RFC 8785 (JCS) of an event built here. With only strings, integers below 2**53,
    booleans, lists and ASCII keys, sorted compact ``json.dumps`` is exactly JCS (same
    escapes, same key order) and runs in C; tests/core/test_accesslog.py checks it against
    the reference implementation."""
    return json.dumps(event, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


# -- appending ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """An entry ready to append: everything but its position."""

    access: Access
    actor_id: uuid.UUID | None
    recorded: dt.datetime
    event_id: uuid.UUID
    event: bytes
    nonce: bytes
    commitment: bytes


def prepare(actor: Actor, access: Access, *, now: dt.datetime | None = None) -> PreparedEntry:
    # Milliseconds, as the leaf keeps them: the column, the event and the leaf agree.
    moment = (now or utcnow()).astimezone(dt.UTC)
    recorded = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    event_id = uuid.uuid4()
    event = canonical_json(build_event(actor, access, recorded=recorded, event_id=event_id))
    nonce = new_nonce()
    return PreparedEntry(
        access=access,
        actor_id=actor.user_id,
        recorded=recorded,
        event_id=event_id,
        event=event,
        nonce=nonce,
        commitment=hashlib.sha256(nonce + event).digest(),
    )


def append_leaf(compact: CompactRange, hashed: bytes) -> list[tuple[int, int, bytes]]:
    """Append a leaf hash to ``compact``; returns the perfect subtrees it completes, as
    (level, index, hash) for levels >= 1."""
    position = compact.size
    completed = []
    level, node, n = 0, hashed, position
    while n & 1:
        level += 1
        node = node_hash(compact.hashes.pop(), node)
        completed.append((level, position >> level, node))
        n >>= 1
    compact.hashes.append(node)
    compact.size += 1
    return completed


_LOCK_HEAD = (
    sa.select(col(AuditHead.tree_size), col(AuditHead.compact))
    .where(col(AuditHead.id) == HEAD_ID)
    .with_for_update()
)


def append(session: Session, entries: Sequence[PreparedEntry]) -> int:
    """Append prepared entries at the next positions, in the session's transaction; returns
    the first position. Holds the head's lock until the transaction ends."""
    head = session.execute(_LOCK_HEAD).one()
    _hold(session)
    first = position = int(head.tree_size)
    compact = CompactRange.decode(head.compact)
    rows, nodes = [], []
    for entry in entries:
        access = entry.access
        leaf = Leaf(
            position=position,
            time_ms=_unix_ms(entry.recorded),
            kind=access.kind,
            outcome=int(access.outcome),
            commitment=entry.commitment,
        ).encode()
        hashed = leaf_hash(leaf)
        nodes.extend(append_leaf(compact, hashed))
        rows.append(
            {
                "position": position,
                "recorded": entry.recorded,
                "kind": access.kind,
                "action": access.action,
                "outcome": int(access.outcome),
                "group_id": access.group_id,
                "patient_id": access.patient_id,
                "actor_id": entry.actor_id,
                "event_id": entry.event_id,
                "event": entry.event.decode(),
                "nonce": entry.nonce,
                "leaf": leaf,
                "leaf_hash": hashed,
            }
        )
        position += 1
    session.execute(sa.insert(AuditEntry), rows)
    if nodes:
        session.execute(
            sa.insert(AuditNode), [{"level": lv, "index": i, "hash": h} for lv, i, h in nodes]
        )
    session.execute(
        sa.update(AuditHead)
        .where(col(AuditHead.id) == HEAD_ID)
        .values(tree_size=position, compact=compact.encode(), updated_at=utcnow())
    )
    return first


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _unix_ms(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)


# -- modes ---------------------------------------------------------------------------------

Mode = Literal["simple", "sequencer"]
_configured_mode: Mode | None = None


def configure(mode: Mode | None) -> None:
    """Set this process's mode (None: ``HDS_AUDIT_MODE``, read once)."""
    global _configured_mode  # noqa: PLW0603 - one process-wide setting
    _configured_mode = mode


def current_mode() -> Mode:
    global _configured_mode  # noqa: PLW0603
    if _configured_mode is None:
        _configured_mode = get_settings().audit_mode
    return _configured_mode


def enqueue(session: Session, entries: Sequence[PreparedEntry]) -> None:
    """Sequencer mode: write prepared entries to ``audit_pending`` in the session's
    transaction; no lock shared with other writers."""
    session.execute(
        sa.insert(AuditPending),
        [
            {
                "recorded": e.recorded,
                "kind": e.access.kind,
                "action": e.access.action,
                "outcome": int(e.access.outcome),
                "group_id": e.access.group_id,
                "patient_id": e.access.patient_id,
                "actor_id": e.actor_id,
                "event_id": e.event_id,
                "event": e.event.decode(),
                "nonce": e.nonce,
                "commitment": e.commitment,
            }
            for e in entries
        ],
    )


def _write(session: Session, entry: PreparedEntry) -> int:
    if current_mode() == "sequencer":
        enqueue(session, [entry])
        return DEFERRED
    return append(session, [entry])


_SEQUENCER_LOCK = 0x6864_7361_7564  # "hdsaud": one sequencer at a time (PostgreSQL)


def sequence(session: Session, *, limit: int = 2000) -> int:
    """Move up to ``limit`` pending entries into the log at the next positions, in the
    session's transaction; returns how many. If another sequencer holds the election lock
    (PostgreSQL advisory lock), returns 0 at once."""
    if session.get_bind().dialect.name == "postgresql":
        elected = session.execute(sa.select(sa.func.pg_try_advisory_xact_lock(_SEQUENCER_LOCK)))
        if not elected.scalar_one():
            return 0
    pending: sa.Table = AuditPending.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        sa.select(pending).order_by(pending.c.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return 0
    entries = [
        PreparedEntry(
            access=Access(
                kind=row.kind,
                action=row.action,
                outcome=Outcome(row.outcome),
                group_id=row.group_id,
                patient_id=row.patient_id,
            ),
            actor_id=row.actor_id,
            recorded=row.recorded,
            event_id=row.event_id,
            event=row.event.encode(),
            nonce=row.nonce,
            commitment=row.commitment,
        )
        for row in rows
    ]
    append(session, entries)
    session.execute(sa.delete(pending).where(pending.c.id.in_([row.id for row in rows])))
    return len(rows)


def sequence_all(database: Database, *, limit: int = 2000, budget_s: float = 5.0) -> int:
    """Drain the pending table batch by batch (each its own transaction), for at most
    ``budget_s`` seconds; returns how many entries were placed."""
    placed, started = 0, time.monotonic()
    while time.monotonic() - started < budget_s:
        with database.unit_of_work() as session:
            moved = sequence(session, limit=limit)
        placed += moved
        if moved < limit:
            break
    return placed


def record(session: Session, actor: Actor, access: Access) -> int:
    """Append ``access`` in the caller's transaction; returns its position (``DEFERRED`` in
    sequencer mode, where the sequencer places it within the second)."""
    return _write(session, prepare(actor, access))


def record_separately(database: Database, actor: Actor, access: Access) -> int:
    """Append ``access`` in a transaction of its own, which survives the caller's rollback;
    returns its position, or ``DEFERRED`` when it is written right after the transaction of
    this process that holds the log's lock ends (module docstring)."""
    entry = prepare(actor, access)
    key = _database_key(database.engine.url)
    with _registry_lock:
        holder = _holders.get(key)
        if holder is not None:
            holder.info.setdefault(_DEFERRED_KEY, []).append((database, entry))
            return DEFERRED
    return _append_alone(database, entry)


def _append_alone(database: Database, entry: PreparedEntry) -> int:
    with database.unit_of_work() as session:
        return _write(session, entry)


@contextmanager
def audited(
    session: Session, database: Database, actor: Actor, access: Access
) -> Iterator[AuditScope]:
    """Record ``access`` for the use case run in the ``with`` block (module docstring)."""
    scope = AuditScope.of(access)
    try:
        yield scope
    except (Forbidden, NotFound, Unauthenticated) as exc:
        _record_attempt(database, actor, scope.applied_to(access, outcome=Outcome.DENIED), exc)
        raise
    except Exception as exc:
        _record_attempt(database, actor, scope.applied_to(access, outcome=Outcome.FAILED), exc)
        raise
    try:
        record(session, actor, scope.applied_to(access))
    except Exception as exc:
        # Fail closed: the data must not leave without its entry.
        log.error("audit entry not recorded", extra={"error": type(exc).__name__})
        raise ServiceUnavailable(
            "The access could not be recorded in the audit log; nothing was returned.",
            code="audit-unavailable",
        ) from None


def _record_attempt(database: Database, actor: Actor, access: Access, exc: Exception) -> None:
    if access.outcome_desc is None:
        desc = exc.code if isinstance(exc, HdsError) else f"error:{type(exc).__name__}"
        access = dataclasses.replace(access, outcome_desc=desc)
    try:
        record_separately(database, actor, access)
    except Exception as failure:
        # The original error is what the caller must see; say that the entry is missing.
        log.error(
            "audit entry of a refused or failed access not recorded",
            extra={"error": type(failure).__name__, "kind": access.kind},
        )


# -- who holds the log's lock in this process ----------------------------------------------

_HOLDER_KEY = "hds_audit_holder"
_DEFERRED_KEY = "hds_audit_deferred"
_registry_lock = threading.Lock()
_holders: dict[tuple[str, ...], OrmSession] = {}


def _database_key(url: sa.URL) -> tuple[str, ...]:
    return (url.get_backend_name(), url.host or "", str(url.port or ""), url.database or "")


def _register(session: OrmSession, key: tuple[str, ...]) -> None:
    with _registry_lock:
        _holders[key] = session
        session.info[_HOLDER_KEY] = key


def _hold(session: Session) -> None:
    if _HOLDER_KEY not in session.info:
        bind = session.get_bind()
        _register(session, _database_key(bind.engine.url))


@event.listens_for(OrmSession, "after_begin")
def _on_begin(session: OrmSession, _transaction: SessionTransaction, connection: Any) -> None:
    # SQLite: every transaction starts with BEGIN IMMEDIATE and so holds the file's lock.
    if connection.dialect.name == "sqlite":
        _register(session, _database_key(connection.engine.url))


@event.listens_for(OrmSession, "after_transaction_end")
def _on_end(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or _HOLDER_KEY not in session.info:
        return
    with _registry_lock:
        key = session.info.pop(_HOLDER_KEY)
        if _holders.get(key) is session:
            del _holders[key]
        deferred: list[tuple[Database, PreparedEntry]] = session.info.pop(_DEFERRED_KEY, [])
    # The connection is released by now: the lock is free.
    for database, entry in deferred:
        try:
            _append_alone(database, entry)
        except Exception as failure:
            log.error(
                "deferred audit entry not recorded",
                extra={"error": type(failure).__name__, "kind": entry.access.kind},
            )


__all__ = [
    "AUDITED_ROUTE",
    "DEFERRED",
    "NONCE_SIZE",
    "Access",
    "AuditScope",
    "Outcome",
    "audited",
    "build_event",
    "record",
    "record_separately",
    "sequence",
]
