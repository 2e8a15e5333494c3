"""Search: the parameters a resource type declares, ``_count`` and the opaque cursor, and the
searchset Bundle with ``total`` and ``self``/``next`` links.

Rules (documented in each SearchParameter of ``fhir/SearchParameter/`` and in the
CapabilityStatement): a parameter the type does not declare, or a modifier it does not accept,
answers 400 — or is ignored with ``Prefer: handling=lenient``; a parameter may appear once; a
comma (a list of alternatives) is not supported; an empty value is ignored. ``_count`` is
capped at ``MAX_COUNT``; ``next`` carries ``_cursor``, the service's keyset cursor, opaque to
clients (each page is filtered by the policy again).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from hdsapp.core.errors import BadRequest
from hdsapp.fhir_api.wire import FhirRequest, SearchParam, lenient

DEFAULT_COUNT = 50
MAX_COUNT = 100
MAX_CURSOR = 512
# Accepted on every search, not search parameters.
RESULT_PARAMETERS = frozenset({"_format", "_pretty", "_count", "_cursor"})
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


@dataclass(frozen=True, kw_only=True, slots=True)
class Search:
    """A parsed search: one value per parameter (``modifiers``: the modifier used, if any)."""

    resource_type: str
    values: Mapping[str, str]
    modifiers: Mapping[str, str] = field(default_factory=dict)
    count: int = DEFAULT_COUNT
    cursor: str | None = None

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def _bad(message: str) -> BadRequest:
    return BadRequest(message, code="invalid-search")


def parse_search(request: FhirRequest, params: Iterable[SearchParam] | None = None) -> Search:
    """The search of ``request`` against ``params`` (default: the request's type's)."""
    declared = {p.name: p for p in (request.search_params if params is None else params)}
    resource_type = request.resource_type or ""
    values: dict[str, str] = {}
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
        if name in values:
            raise _bad(f"The search parameter {name!r} may appear only once.")
        if _UNESCAPED_COMMA.search(value):
            raise _bad(f"Lists of values (commas) are not supported for {name!r}.")
        values[name] = value.replace("\\,", ",")
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
    for name, value in search.values.items():
        modifier = search.modifiers.get(name)
        pairs.append((f"{name}:{modifier}" if modifier else name, value.replace(",", "\\,")))
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
