"""Search: the parameters a resource type declares, ``_count`` and the opaque cursor, and the
searchset Bundle with ``total`` and ``self``/``next`` links.

Rules (documented in each SearchParameter of ``fhir/SearchParameter/`` and in the
CapabilityStatement): a parameter the type does not declare, or a modifier it does not accept,
answers 400 — or is ignored with ``Prefer: handling=lenient``; a parameter may appear once; a
comma (a list of alternatives) is not supported; an empty value is ignored. A parameter whose
definition says ``multipleAnd`` may appear twice (``date=ge…&date=lt…``). ``_count`` is
capped at ``MAX_COUNT``; ``next`` carries ``_cursor``, the service's keyset cursor, opaque to
clients (each page is filtered by the policy again).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from hdsapp.core.errors import BadRequest, Unprocessable
from hdsapp.fhir_api.wire import FhirRequest, FhirResult, SearchParam, lenient, reference_id

DEFAULT_COUNT = 50
MAX_COUNT = 100
MAX_CURSOR = 512
MAX_REPEATS = 2  # a repeatable parameter (multipleAnd), e.g. date=ge...&date=lt...
# Accepted on every search, not search parameters.
RESULT_PARAMETERS = frozenset({"_format", "_pretty", "_count", "_cursor"})
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


@dataclass(frozen=True, kw_only=True, slots=True)
class Search:
    """A parsed search: the values of each parameter (one, unless its definition allows
    ``multipleAnd``), and the modifier used, if any."""

    resource_type: str
    values: Mapping[str, tuple[str, ...]]
    modifiers: Mapping[str, str] = field(default_factory=dict)
    count: int = DEFAULT_COUNT
    cursor: str | None = None

    def get(self, name: str) -> str | None:
        found = self.values.get(name)
        return found[0] if found else None

    def all(self, name: str) -> tuple[str, ...]:
        return self.values.get(name, ())


def _bad(message: str) -> BadRequest:
    return BadRequest(message, code="invalid-search")


def parse_search(request: FhirRequest, params: Iterable[SearchParam] | None = None) -> Search:
    """The search of ``request`` against ``params`` (default: the request's type's)."""
    declared = {p.name: p for p in (request.search_params if params is None else params)}
    resource_type = request.resource_type or ""
    values: dict[str, tuple[str, ...]] = {}
    modifiers: dict[str, str] = {}
    count, cursor = DEFAULT_COUNT, None
    for key, value in request.params:
        if key in {"_format", "_pretty"}:
            continue
        if key == "_count":
            count = _count(value)
            continue
        if key == "_cursor":
            if not value or len(value) > MAX_CURSOR:
                raise BadRequest("The cursor is not valid.", code="invalid-cursor")
            cursor = value
            continue
        name, _, modifier = key.partition(":")
        spec = declared.get(name)
        if spec is None or (modifier and modifier not in spec.modifiers):
            if lenient(request):
                continue
            shown = key if len(key) <= 64 else key[:64] + "…"
            raise _bad(
                f"The search parameter {shown!r} is not supported for {resource_type}"
                " (see the CapabilityStatement; Prefer: handling=lenient ignores it)."
            )
        if value == "":
            continue
        if name in values and (not spec.repeatable or len(values[name]) >= MAX_REPEATS):
            raise _bad(f"The search parameter {name!r} may not appear this often.")
        if modifiers.get(name, modifier) != modifier:
            raise _bad(f"The search parameter {name!r} is repeated with another modifier.")
        if _UNESCAPED_COMMA.search(value):
            raise _bad(f"Lists of values (commas) are not supported for {name!r}.")
        values[name] = (*values.get(name, ()), value.replace("\\,", ","))
        if modifier:
            modifiers[name] = modifier
    return Search(
        resource_type=resource_type,
        values=values,
        modifiers=modifiers,
        count=count,
        cursor=cursor,
    )


def _count(value: str) -> int:
    if not value.isdigit() or len(value) > 6:
        raise _bad("_count takes a whole number.")
    return max(1, min(int(value), MAX_COUNT))


def _query(search: Search, cursor: str | None) -> str:
    pairs: list[tuple[str, str]] = []
    for name, values in search.values.items():
        modifier = search.modifiers.get(name)
        key = f"{name}:{modifier}" if modifier else name
        pairs.extend((key, value.replace(",", "\\,")) for value in values)
    pairs.append(("_count", str(search.count)))
    if cursor is not None:
        pairs.append(("_cursor", cursor))
    return urlencode(pairs)


def searchset(
    request: FhirRequest,
    search: Search,
    entries: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    total: int | None,
    next_cursor: str | None,
) -> dict[str, Any]:
    """The searchset Bundle of a page: ``entries`` are (id, resource) pairs."""
    here = request.url(search.resource_type)
    links = [{"relation": "self", "url": f"{here}?{_query(search, search.cursor)}"}]
    if next_cursor is not None:
        links.append({"relation": "next", "url": f"{here}?{_query(search, next_cursor)}"})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    if entries:
        bundle["entry"] = [
            {
                "fullUrl": request.url(search.resource_type, resource_id),
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource_id, resource in entries
        ]
    return bundle


@contextmanager
def searching() -> Iterator[None]:
    """A search the service cannot run (its 422 ``invalid-search``) is a bad request in FHIR
    (400), not a bad resource."""
    try:
        yield
    except Unprocessable as exc:
        if exc.code not in {"invalid-search", "invalid-patient"}:
            raise
        raise BadRequest(exc.detail, code="invalid-search", extra=exc.extra) from None


def patient_reference(request: FhirRequest, value: str) -> str:
    """A ``patient`` search value as a thread stores it: ``Patient/{id}`` for a patient of the
    group (``Patient/{id}``, the bare id, or the absolute URL on this base), an absolute URL
    as given for a Patient on another FHIR server (the service checks its shape)."""
    if value.startswith(("https://", "http://")) and not value.startswith(request.base + "/"):
        return value
    try:
        return f"Patient/{reference_id(value, 'Patient', base=request.base)}"
    except ValueError:
        raise _bad("patient takes Patient/{id} or the absolute URL of a Patient.") from None


def referenced_id(
    request: FhirRequest, search: Search, name: str, resource_type: str
) -> uuid.UUID | None:
    """The id a reference parameter names (``Type/{id}``, the bare id or the absolute URL on
    this base), None if absent; 400 if it names anything else."""
    value = search.get(name)
    if value is None:
        return None
    try:
        return reference_id(value, resource_type, base=request.base)
    except ValueError:
        raise _bad(f"{name} takes {resource_type}/{{id}}.") from None


def ids(search: Search) -> list[uuid.UUID] | None:
    """``_id``: None if absent; a malformed id matches nothing (an empty, audited search)."""
    value = search.get("_id")
    if value is None:
        return None
    try:
        return [uuid.UUID(value)]
    except ValueError:
        return []


def page(
    request: FhirRequest,
    search: Search,
    entries: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    next_cursor: str | None,
    total: int | None = None,
) -> FhirResult:
    """The result of a search: the searchset Bundle of one page."""
    return FhirResult(
        resource=searchset(request, search, entries, total=total, next_cursor=next_cursor)
    )
