"""The auditor's use cases: query, export, proofs, checkpoints, verification.

Who may do what is hdsapp/policy/rules.toml (actions ``audit.query``, ``audit.export``,
``audit.proof``), asked through ``hdsapp.policy.decide``:
- the log of a group (query, export) is for the auditors of that group (others get 404 if
  not in the group, 403 if in it); a token also needs the ``audit`` scope; an export also
  needs a recent authentication (step-up). Each such call is itself an entry (kind
  ``audit-query`` or ``export``), refusals included.
- checkpoints, proofs and the verifier key carry hashes only (no health data, no ids): any
  authenticated caller may fetch them, so members, auditors' scripts and outside witnesses
  can follow the log; anonymous callers may not. They are not entries: a witness polling
  every second would otherwise grow the log it watches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from audit import b64
from audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from audit.compact_range import CompactRange
from audit.export import ExportEntry, build_export, required_proofs
from audit.leaf import LeafError, event_outcome, instant_ms, unpack
from audit.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
)
from audit.note import Signer, Verifier
from hdsapp.auditing import repository
from hdsapp.auditing.repository import EntryRow, RangeRecorder, StoredHashSource
from hdsapp.auditing.schemas import (
    AuditEntryPublic,
    AuditPage,
    CheckpointResult,
    ConsistencyProof,
    EntryFilter,
    InclusionProof,
    LogReport,
)
from hdsapp.config import Settings
from hdsapp.core.accesslog import (
    Access,
    AuditScope,
    append_leaf,
    audited,
    canonical_json,
    sequence_all,
)
from hdsapp.core.actor import Actor
from hdsapp.core.db import Database, utcnow
from hdsapp.core.errors import BadRequest, NotFound, ServiceUnavailable
from hdsapp.groups.service import authorize, policy_context, refusal
from hdsapp.models.audit_checkpoint import AuditCheckpoint
from hdsapp.policy import Context, Resource, ResourceType, decide

MAX_PAGE = 100
MAX_EXPORT_ENTRIES = 200_000
AUDIT_PURPOSE = "HOPERAT"  # v3-ActReason: healthcare operations (oversight of the log)


# -- who may --------------------------------------------------------------------------------


def _require_authenticated(actor: Actor) -> None:
    """audit.proof: hashes only, for any authenticated caller."""
    decision = decide(
        actor, "audit.proof", Resource(type=ResourceType.AUDIT), Context(now=utcnow())
    )
    if not decision.allowed:
        raise refusal(decision, ResourceType.AUDIT, Context(now=utcnow()))


def _require_auditor(
    actor: Actor, action: str, group_id: uuid.UUID, scope: AuditScope, settings: Settings
) -> None:
    resource = Resource(type=ResourceType.AUDIT, group_id=group_id)
    authorize(actor, action, resource, policy_context(settings), scope)


# -- query ----------------------------------------------------------------------------------


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 20:
        raise BadRequest("The cursor is not one this API returned.", code="invalid-cursor")
    return int(cursor)


def _public(row: Any) -> AuditEntryPublic:
    return AuditEntryPublic(
        index=row.position,
        recorded=row.recorded,
        kind=row.kind,
        action=row.action,
        outcome=row.outcome,
        actor=row.actor_id,
        patient=row.patient_id,
        event=json.loads(row.event),
    )


def query_log(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    query: EntryFilter,
    cursor: str | None = None,
    limit: int = 50,
    query_string: str | None = None,
    settings: Settings,
    with_total: bool = False,
) -> AuditPage:
    """A group's entries, newest first (ITI-81-style AuditEvent search); ``with_total``: how
    many match, too."""
    access = Access(
        kind="audit-query",
        action="E",
        group_id=query.group_id,
        patient_id=query.patient_id,
        resource_type="AuditEvent",
        purpose_of_use=AUDIT_PURPOSE,
        query=query_string or None,
    )
    with audited(session, database, actor, access) as scope:
        _require_auditor(actor, "audit.query", query.group_id, scope, settings)
        before = _parse_cursor(cursor)
        limit = max(1, min(limit, MAX_PAGE))
        rows = repository.find_entries(session, query, before=before, limit=limit + 1)
        items = [_public(row) for row in rows[:limit]]
        more = len(rows) > limit
        total = repository.count_matching(session, query) if with_total else None
        return AuditPage(
            items=items, next_cursor=str(items[-1].index) if more else None, total=total
        )


def read_entry(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    event_id: uuid.UUID,
) -> AuditEntryPublic:
    """One entry of a group's log, by its AuditEvent id (FHIR AuditEvent read). Policy:
    ``audit.query``; itself an entry (kind ``audit-query``), refusals included."""
    access = Access(
        kind="audit-query",
        action="R",
        group_id=group_id,
        resource_type="AuditEvent",
        resource_id=str(event_id),
        purpose_of_use=AUDIT_PURPOSE,
    )
    with audited(session, database, actor, access) as scope:
        _require_auditor(actor, "audit.query", group_id, scope, settings)
        row = repository.entry_by_event_id(session, group_id, event_id)
        if row is None:
            raise NotFound("No such audit event.")
        return _public(row)


# -- export ---------------------------------------------------------------------------------


def export_log(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    group_id: uuid.UUID,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    query_string: str | None = None,
    settings: Settings,
) -> dict[str, Any]:
    """The group's entries in [since, until) as an audit/ export document: the contiguous
    range of the log from the first to the last of them (other groups' entries in between
    withheld: leaf only), the checkpoints that cover it, and the proofs. Verifiable offline
    with ``python -m audit verify``. Entries not yet under a checkpoint are left out."""
    access = Access(
        kind="export",
        action="R",
        group_id=group_id,
        resource_type="AuditEvent",
        purpose_of_use=AUDIT_PURPOSE,
        query=query_string or None,
    )
    with audited(session, database, actor, access) as scope:
        # The rule of audit.export asks for a recent authentication (step-up): the hook is
        # actor.authenticated_within(HDS_STEP_UP_SECONDS), evaluated by the policy.
        _require_auditor(actor, "audit.export", group_id, scope, settings)
        return _group_export(session, group_id=group_id, since=since, until=until)


def _group_export(
    session: Session,
    *,
    group_id: uuid.UUID,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> dict[str, Any]:
    latest = repository.latest_checkpoint(session)
    if latest is None:
        raise ServiceUnavailable(
            "No checkpoint has been signed yet; retry in a few seconds.", code="no-checkpoint"
        )
    span = repository.group_span(session, EntryFilter(group_id=group_id, since=since, until=until))
    start, end = (span[0], span[1] + 1) if span else (latest.tree_size, latest.tree_size)
    start, end = min(start, latest.tree_size), min(end, latest.tree_size)
    if end - start > MAX_EXPORT_ENTRIES:
        raise BadRequest(
            f"The export would hold {end - start} entries, more than {MAX_EXPORT_ENTRIES}:"
            " narrow it with since and until.",
            code="export-too-large",
        )
    covering = repository.covering_checkpoint(session, end)
    assert covering is not None  # latest covers end
    chosen = [covering] if covering.tree_size == latest.tree_size else [covering, latest]
    entries = []
    for batch in repository.iter_entries(session, start, end):
        for row in batch:
            if row.group_id == group_id:
                entries.append(
                    ExportEntry(
                        leaf=row.leaf,
                        event=json.loads(row.event),
                        nonce=row.nonce,
                        full_url=f"urn:uuid:{row.event_id}",
                    )
                )
            else:
                entries.append(ExportEntry(leaf=row.leaf))
    sizes = [c.tree_size for c in chosen]
    source = StoredHashSource(session)
    recorder = RangeRecorder()
    CompactRange.from_source(recorder, start)
    for first, second in required_proofs(end, sizes):
        consistency_proof(recorder, first, second)
    source.preload(recorder.ranges)
    origin = Checkpoint.parse(_note_text(latest.note)).origin
    keys = list(dict.fromkeys(c.verifier_key for c in chosen))
    return build_export(
        origin=origin,
        verifier_keys=keys,
        start=start,
        entries=entries,
        checkpoints=[c.note for c in chosen],
        source=source,
        bundle_id=str(uuid.uuid4()),
        timestamp=utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )


def _note_text(note: str) -> str:
    return note[: note.rfind("\n\n") + 1]


# -- proofs, checkpoint, key ------------------------------------------------------------------


def _out_of_range(what: str, low: int, high: int) -> BadRequest:
    return BadRequest(
        f"{what} must be between {low} and {high}.",
        code="out-of-range",
        extra={"valid_range": {"min": low, "max": high}},
    )


def inclusion(
    *, session: Session, actor: Actor, index: int, tree_size: int | None = None
) -> InclusionProof:
    _require_authenticated(actor)
    size = repository.head(session).size
    if size == 0:
        raise BadRequest("The audit log is empty.", code="out-of-range")
    if tree_size is None:
        latest = repository.latest_checkpoint(session)
        tree_size = latest.tree_size if latest is not None and latest.tree_size else size
    if not 1 <= tree_size <= size:
        raise _out_of_range("tree_size", 1, size)
    if not 0 <= index < tree_size:
        raise _out_of_range("index", 0, tree_size - 1)
    source = StoredHashSource(session)
    recorder = RangeRecorder()
    inclusion_proof(recorder, index, tree_size)
    source.preload([*recorder.ranges, (index, index + 1)])
    proof = inclusion_proof(source, index, tree_size)
    return InclusionProof(
        index=index,
        tree_size=tree_size,
        leaf_hash=b64.encode(source.node((0, index))),
        proof=[b64.encode(h) for h in proof],
    )


def consistency(*, session: Session, actor: Actor, first: int, second: int) -> ConsistencyProof:
    _require_authenticated(actor)
    size = repository.head(session).size
    if size == 0:
        raise BadRequest("The audit log is empty.", code="out-of-range")
    if not 1 <= second <= size:
        raise _out_of_range("second", 1, size)
    if not 1 <= first <= second:
        raise _out_of_range("first", 1, second)
    source = StoredHashSource(session)
    recorder = RangeRecorder()
    consistency_proof(recorder, first, second)
    source.preload(recorder.ranges)
    proof = consistency_proof(source, first, second)
    return ConsistencyProof(first=first, second=second, proof=[b64.encode(h) for h in proof])


def _latest(session: Session) -> AuditCheckpoint:
    latest = repository.latest_checkpoint(session)
    if latest is None:
        raise NotFound("No checkpoint has been signed yet.", code="no-checkpoint")
    return latest


def latest_checkpoint(*, session: Session, actor: Actor) -> str:
    _require_authenticated(actor)
    return _latest(session).note


def verifier_key(*, session: Session, actor: Actor) -> str:
    _require_authenticated(actor)
    return _latest(session).verifier_key


def checkpoint_now(*, database: Database, signer: Signer) -> CheckpointResult:
    """What the scheduled signer does: place the pending entries (sequencer mode, or left by
    it), then sign the tree if it grew."""
    sequence_all(database)
    with database.unit_of_work() as session:
        return sign_new_checkpoint(session=session, signer=signer)


def sign_new_checkpoint(*, session: Session, signer: Signer) -> CheckpointResult:
    """Sign the current tree head if the tree grew since the last checkpoint (or if there is
    none yet, so that the verifier key is published from the start)."""
    head = repository.head(session)
    latest = repository.latest_checkpoint(session)
    if latest is not None and latest.tree_size >= head.size:
        return CheckpointResult(
            ok=True, entries=head.size, checkpoint_size=latest.tree_size, signed=False
        )
    root = head.compact.root()
    note = sign_checkpoint(Checkpoint(signer.name, head.size, root), [signer])
    row = AuditCheckpoint(
        tree_size=head.size,
        root_hash=root,
        note=note,
        verifier_key=str(signer.verifier),
        signed_at=utcnow(),
    )
    signed = repository.add_checkpoint(session, row)
    return CheckpointResult(ok=True, entries=head.size, checkpoint_size=head.size, signed=signed)


# -- verification ---------------------------------------------------------------------------


class _Divergence(Exception):
    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def verify_log(
    *, session: Session, verifiers: Sequence[Verifier], pinned: bool, origin: str | None = None
) -> LogReport:
    """Recompute every leaf from its stored AuditEvent and nonce, the tree (nodes and head),
    each checkpoint's signature and root, and the consistency between checkpoints; stop at
    the first divergence."""
    stored = repository.checkpoints(session)
    try:
        _check_checkpoints(stored, verifiers, origin)
        entries = _check_entries(session, stored)
        _check_consistency(session, stored)
    except _Divergence as divergence:
        return LogReport(
            ok=False,
            entries=repository.count_entries(session),
            checkpoint_size=stored[-1].tree_size if stored else None,
            checkpoints=len(stored),
            key_pinned=pinned,
            error=str(divergence),
            first_bad_index=divergence.index,
        )
    return LogReport(
        ok=True,
        entries=entries,
        checkpoint_size=stored[-1].tree_size if stored else None,
        checkpoints=len(stored),
        key_pinned=pinned,
        pending=repository.count_pending(session),
    )


def _check_checkpoints(
    stored: Sequence[AuditCheckpoint], verifiers: Sequence[Verifier], origin: str | None
) -> None:
    if not verifiers and stored:
        raise _Divergence("no verifier key to check the checkpoints with")
    for k, row in enumerate(stored):
        where = f"checkpoint {k} (size {row.tree_size})"
        try:
            checkpoint, _ = open_checkpoint(row.note, verifiers)
        except ValueError as e:
            raise _Divergence(f"{where}: {e}") from None
        origin = origin or checkpoint.origin
        if checkpoint.origin != origin:
            raise _Divergence(f"{where}: origin {checkpoint.origin!r} is not {origin!r}")
        if checkpoint.size != row.tree_size or checkpoint.root_hash != row.root_hash:
            raise _Divergence(f"{where}: the signed note does not say what its row says")
        if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
            raise _Divergence(f"{where}: size 0 with a root other than the empty tree's")


def _check_entries(session: Session, stored: Sequence[AuditCheckpoint]) -> int:
    at_size = {row.tree_size: (k, row) for k, row in enumerate(stored)}
    compact = CompactRange()
    expected = 0
    for batch in repository.iter_entries(session, 0):
        completed: dict[int, dict[int, bytes]] = {}
        for row in batch:
            if row.position != expected:
                raise _Divergence(
                    f"entry {expected}: missing (the next stored entry is {row.position})",
                    expected,
                )
            _check_entry(row)
            for level, index, hashed in append_leaf(compact, row.leaf_hash):
                completed.setdefault(level, {})[index] = hashed
            expected += 1
            if expected in at_size:
                k, covered = at_size[expected]
                if compact.root() != covered.root_hash:
                    raise _Divergence(
                        f"checkpoint {k} (size {expected}): its root is not that of entries"
                        f" [0, {expected}): an entry before {expected} was replaced"
                    )
        for level, hashes in completed.items():
            found = repository.nodes_in(session, level, min(hashes), max(hashes))
            for index, hashed in sorted(hashes.items()):
                if found.get(index) != hashed:
                    first = index << level
                    raise _Divergence(
                        f"tree node {level}/{index} (entries [{first}, {(index + 1) << level}))"
                        " is missing or differs from its entries",
                        first,
                    )
    head = repository.head(session)
    if head.size != expected:
        raise _Divergence(
            f"entry {min(head.size, expected)}: the head counts {head.size} entries, the log"
            f" holds {expected}",
            min(head.size, expected),
        )
    if head.compact != compact:
        raise _Divergence("the head's compact range is not that of the entries", expected)
    if repository.count_nodes(session) != expected - expected.bit_count():
        raise _Divergence("the stored tree holds nodes that no entries account for")
    for k, checkpoint in enumerate(stored):
        if checkpoint.tree_size > expected:
            raise _Divergence(
                f"checkpoint {k} (size {checkpoint.tree_size}) covers entries the log no longer"
                f" holds: entry {expected} onwards are missing",
                expected,
            )
    return expected


def _check_entry(row: EntryRow) -> None:
    index = row.position
    try:
        position, time_ms, kind, outcome, commitment = unpack(row.leaf)
    except LeafError as e:
        raise _Divergence(f"entry {index}: leaf data: {e}", index) from None
    if position != index:
        raise _Divergence(f"entry {index}: the leaf is for position {position}", index)
    if leaf_hash(row.leaf) != row.leaf_hash:
        raise _Divergence(f"entry {index}: the stored leaf hash is not that of its leaf", index)
    event_bytes = row.event.encode()
    if hashlib.sha256(row.nonce + event_bytes).digest() != commitment:
        raise _Divergence(f"entry {index}: event hash mismatch", index)
    try:
        event = json.loads(row.event)
        recorded, result = instant_ms(event.get("recorded")), event_outcome(event)
    except (ValueError, AttributeError) as e:
        raise _Divergence(f"entry {index}: the event is unusable: {e}", index) from None
    if canonical_json(event) != event_bytes:
        raise _Divergence(f"entry {index}: the stored event is not in canonical form", index)
    if (recorded, result, kind) != (time_ms, outcome, row.kind):
        raise _Divergence(
            f"entry {index}: the leaf's time, outcome or kind is not the event's", index
        )
    facts = _indexed_facts(event)
    columns = (row.outcome, row.action, row.group_id, row.patient_id, row.actor_id)
    if columns != (outcome, *facts):
        raise _Divergence(
            f"entry {index}: the indexed columns (outcome, action, group, patient, actor)"
            " do not match the event",
            index,
        )
    if _ms(row.recorded) != time_ms:
        raise _Divergence(f"entry {index}: the recorded column is not the event's time", index)


def _indexed_facts(
    event: dict[str, Any],
) -> tuple[str, uuid.UUID | None, uuid.UUID | None, uuid.UUID | None]:
    group = patient = None
    for entity in event.get("entity", []):
        reference = entity.get("what", {}).get("reference", "")
        if reference.startswith("Organization/") and "role" not in entity:
            group = uuid.UUID(reference.removeprefix("Organization/"))
        elif reference.startswith("Patient/") and entity.get("role", {}).get("code") == "1":
            patient = uuid.UUID(reference.removeprefix("Patient/"))
    alt = event["agent"][0].get("altId")
    return event["action"], group, patient, uuid.UUID(alt) if alt else None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ms(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)


def _check_consistency(session: Session, stored: Sequence[AuditCheckpoint]) -> None:
    """Every checkpoint's root was recomputed from the same leaves, which is consistency;
    this also checks the proofs the API serves between successive checkpoints."""
    pairs = [(a, b) for a, b in itertools.pairwise(stored) if a.tree_size]
    for k in range(0, len(pairs), 500):
        chunk = pairs[k : k + 500]
        recorder = RangeRecorder()
        for a, b in chunk:
            consistency_proof(recorder, a.tree_size, b.tree_size)
        source = StoredHashSource(session)
        source.preload(recorder.ranges)
        for a, b in chunk:
            proof = consistency_proof(source, a.tree_size, b.tree_size)
            try:
                verify_consistency(a.tree_size, b.tree_size, a.root_hash, b.root_hash, proof)
            except ProofError as e:
                raise _Divergence(
                    f"checkpoint of size {a.tree_size} is not consistent with size"
                    f" {b.tree_size}: {e}"
                ) from None
