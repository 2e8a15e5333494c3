"""AuditEvent: the group's audit log, read and searched by its auditors over
``hdsapp.auditing.service`` (policy ``audit.query``; a token needs the ``audit`` scope). Served
from ``audit_entry``: each entry's AuditEvent (IHE BALP) as it was recorded and committed to
in the Merkle tree. The log is append-only: create, update and delete answer 405 (there are
no such routes), and each read or search is itself an entry.

Search (ITI-81 style): ``patient`` (Patient/{id}), ``agent`` (Practitioner/{user id}),
``action`` (C, R, U, D, E), ``outcome`` (0, 4, 8, 12), ``date`` (twice at most, with the
prefixes eq, ge, gt, le, lt), newest first.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from urllib.parse import urlencode

from hdsapp.auditing import service as auditing
from hdsapp.auditing.schemas import EntryFilter
from hdsapp.core.errors import BadRequest
from hdsapp.fhir_api.definition import Operation, ResourceDef
from hdsapp.fhir_api.search import Search, parse_search, searchset
from hdsapp.fhir_api.wire import FhirRequest, FhirResult, Services, parse_id, reference_id

TYPE = "AuditEvent"
ACTIONS = frozenset({"C", "R", "U", "D", "E"})
OUTCOMES = frozenset({"0", "4", "8", "12"})
_DATE = re.compile(r"(eq|ge|gt|le|lt)?([0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?)$")
_INSTANT = re.compile(r"(eq|ge|gt|le|lt)?([0-9]{4}-[0-9]{2}-[0-9]{2}T.+)$")


def read(services: Services, request: FhirRequest) -> FhirResult:
    entry = auditing.read_entry(
        session=services.session,
        database=services.database,
        actor=services.actor,
        settings=services.settings,
        group_id=request.group_id,
        event_id=parse_id(request.id, TYPE),
    )
    return FhirResult(resource=entry.event)


def _bad(message: str) -> BadRequest:
    return BadRequest(message, code="invalid-search")


def _span(value: str) -> tuple[str, dt.datetime, dt.datetime]:
    """(prefix, start, end) of a date search value: the instants it covers, end excluded."""
    match = _DATE.match(value)
    if match is not None:
        prefix, text = match.group(1) or "eq", match.group(2)
        parts = [int(p) for p in text.split("-")]
        year = parts[0]
        if len(parts) == 1:
            return prefix, _utc(year, 1, 1), _utc(year + 1, 1, 1)
        month = parts[1]
        if not 1 <= month <= 12:
            raise _bad("date: not a date.")
        if len(parts) == 2:
            following = _utc(year + 1, 1, 1) if month == 12 else _utc(year, month + 1, 1)
            return prefix, _utc(year, month, 1), following
        if not 1 <= parts[2] <= calendar.monthrange(year, month)[1]:
            raise _bad("date: not a date.")
        start = _utc(year, month, parts[2])
        return prefix, start, start + dt.timedelta(days=1)
    match = _INSTANT.match(value)
    if match is None:
        raise _bad("date takes [eq|ge|gt|le|lt]YYYY[-MM[-DD]] or an instant with its zone.")
    try:
        moment = dt.datetime.fromisoformat(match.group(2).replace("Z", "+00:00"))
    except ValueError:
        raise _bad("date: not an instant.") from None
    if moment.tzinfo is None:
        raise _bad("date: an instant needs its time zone.")
    return match.group(1) or "eq", moment, moment + dt.timedelta(microseconds=1)


def _utc(year: int, month: int, day: int) -> dt.datetime:
    return dt.datetime(year, month, day, tzinfo=dt.UTC)


def date_range(values: tuple[str, ...]) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``since`` (included) and ``until`` (excluded) of the date parameters."""
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    for value in values:
        prefix, start, end = _span(value)
        low = {"eq": start, "ge": start, "gt": end}.get(prefix)
        high = {"eq": end, "le": end, "lt": start}.get(prefix)
        if low is not None:
            since = low if since is None else max(since, low)
        if high is not None:
            until = high if until is None else min(until, high)
    return since, until


def entry_filter(request: FhirRequest, search: Search) -> EntryFilter:
    patient_id = actor_id = None
    if (value := search.get("patient")) is not None:
        try:
            patient_id = reference_id(value, "Patient", base=request.base)
        except ValueError:
            raise _bad("patient takes Patient/{id}.") from None
    if (value := search.get("agent")) is not None:
        try:
            actor_id = reference_id(value, "Practitioner", base=request.base)
        except ValueError:
            raise _bad("agent takes Practitioner/{user id}.") from None
    action = search.get("action")
    if action is not None and action not in ACTIONS:
        raise _bad("action is one of C, R, U, D, E.")
    outcome = search.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise _bad("outcome is one of 0, 4, 8, 12.")
    since, until = date_range(search.all("date"))
    return EntryFilter(
        group_id=request.group_id,
        patient_id=patient_id,
        actor_id=actor_id,
        action=action,
        outcome=None if outcome is None else int(outcome),
        since=since,
        until=until,
    )


def search_type(services: Services, request: FhirRequest) -> FhirResult:
    search = parse_search(request)
    query = entry_filter(request, search)
    # What the auditor asked, as the entry of this query records it (ids and codes only).
    asked = [(name, value) for name, values in search.values.items() for value in values]
    page = auditing.query_log(
        session=services.session,
        database=services.database,
        actor=services.actor,
        query=query,
        cursor=search.cursor,
        limit=search.count,
        query_string=f"{TYPE}?{urlencode(asked)}",
        settings=services.settings,
        with_total=True,
    )
    bundle = searchset(
        request,
        search,
        [(str(item.event["id"]), item.event) for item in page.items],
        total=page.total,
        next_cursor=page.next_cursor,
    )
    return FhirResult(resource=bundle)


DEFINITION = ResourceDef(
    type=TYPE,
    documentation=(
        "The group's audit log (IHE BALP AuditEvents), for its auditors (token scope audit);"
        " append-only: no create, update or delete. Each query is itself recorded."
    ),
    versioning="no-version",
    operations=(
        Operation(code="read", action="audit.query", handler=read),
        Operation(code="search-type", action="audit.query", handler=search_type),
    ),
    search=("patient", "agent", "action", "outcome", "date"),
)
