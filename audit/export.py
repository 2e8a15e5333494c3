"""The audit export: a contiguous range of the log, with what proves it, as one JSON document.

    {
      "format": "hdsapp-audit-export", "version": 1,
      "origin": the log's checkpoint origin,
      "verifier_keys": [C2SP verifier key strings, at least one],
      "range": {"start": a, "end": b},            the entries [a, b)
      "prefix": {"size": a, "hashes": [base64]},  compact range of leaves [0, a)
      "entries": [{"index": i, "leaf": base64 leaf data,
                   "nonce": base64 | null, "fullUrl": string | null}, ...],
      "bundle": FHIR R4 Bundle, type "collection", of the disclosed AuditEvents,
      "checkpoints": [signed notes, by increasing tree size],
      "consistency": [{"first": m, "second": n, "proof": [base64]}, ...]
    }

An entry with a nonce refers by `fullUrl` to the next unclaimed Bundle entry, in order; an entry
whose nonce and fullUrl are null is withheld (another care group's event): its leaf still counts
in the tree, but its event is not disclosed. `consistency` holds exactly the proofs that
`required_proofs` names, in that order.

`parse_export` checks the document's own shape: JSON, keys, types, base64 of the fields defined
here. What is signed or committed to (leaf data, notes, checkpoints, events) is left to the
verifier, which can then name the entry or checkpoint that fails.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from audit import b64
from audit.checkpoint import Checkpoint
from audit.compact_range import CompactRange
from audit.merkle import HashSource, consistency_proof
from audit.note import NoteError, Verifier, parse_note

FORMAT = "hdsapp-audit-export"
VERSION = 1

_KEYS = {
    "format", "version", "origin", "verifier_keys", "range", "prefix",
    "entries", "bundle", "checkpoints", "consistency",
}  # fmt: skip
_ENTRY_KEYS = {"index", "leaf", "nonce", "fullUrl"}
_BUNDLE_ENTRY_KEYS = {"fullUrl", "resource"}
_BUNDLE_KEYS = frozenset({"resourceType", "id", "meta", "identifier", "type", "timestamp", "entry"})


class ExportError(ValueError):
    """A document that is not a well-formed audit export."""


@dataclass(frozen=True, slots=True)
class ExportEntry:
    """One entry as the log stores it; event, nonce and full_url all None when withheld."""

    leaf: bytes
    event: Mapping[str, Any] | None = None
    nonce: bytes | None = None
    full_url: str | None = None


@dataclass(frozen=True, slots=True)
class Export:
    """A parsed export. Entries are held column by column, so a large export costs a few
    lists rather than an object per entry."""

    origin: str
    verifier_keys: tuple[Verifier, ...]
    start: int
    end: int
    prefix: CompactRange
    indices: list[int]
    leaves: list[str]
    nonces: list[str | None]
    full_urls: list[str | None]
    events: list[tuple[str, dict[str, Any]]]
    checkpoints: tuple[str, ...]
    proofs: tuple[tuple[int, int, tuple[bytes, ...]], ...]


def required_proofs(end: int, sizes: Sequence[int]) -> list[tuple[int, int]]:
    """The consistency proofs an export carries: from the end of its range to the first
    checkpoint at or past it, then between successive checkpoints. Proofs from size 0 prove
    nothing and are left out, as are proofs between equal sizes."""
    pairs = list(itertools.pairwise(sizes))
    covering = next((s for s in sizes if s >= end), None)
    if covering is not None:
        pairs.append((end, covering))
    return sorted({(a, b) for a, b in pairs if 0 < a < b})


def build_export(
    *,
    origin: str,
    verifier_keys: Sequence[str],
    start: int,
    entries: Sequence[ExportEntry],
    checkpoints: Sequence[str],
    source: HashSource,
    bundle_id: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """The export document (a JSON-ready dict) of entries [start, start + len(entries)).

    `source` gives the subtree hashes of the log for the prefix and the proofs; `checkpoints`
    are signed notes, by increasing size, the last at or past the end of the range.
    """
    end = start + len(entries)
    sizes = [Checkpoint.parse(parse_note(note).text).size for note in checkpoints]
    if not sizes or sizes != sorted(set(sizes)) or sizes[-1] < end:
        raise ExportError("checkpoints must grow in size and the last must cover the range")
    rows, bundle_entries = [], []
    for index, entry in enumerate(entries, start):
        disclosed = entry.event is not None
        if disclosed != (entry.nonce is not None) or disclosed != (entry.full_url is not None):
            raise ExportError(f"entry {index}: give event, nonce and fullUrl, or none of them")
        rows.append(
            {
                "index": index,
                "leaf": b64.encode(entry.leaf),
                "nonce": None if entry.nonce is None else b64.encode(entry.nonce),
                "fullUrl": entry.full_url,
            }
        )
        if entry.event is not None:
            bundle_entries.append({"fullUrl": entry.full_url, "resource": dict(entry.event)})
    bundle: dict[str, Any] = {"resourceType": "Bundle"}
    if bundle_id is not None:
        bundle["id"] = bundle_id
    bundle["type"] = "collection"
    if timestamp is not None:
        bundle["timestamp"] = timestamp
    if bundle_entries:  # FHIR JSON has no empty arrays
        bundle["entry"] = bundle_entries
    prefix = CompactRange.from_source(source, start)
    return {
        "format": FORMAT,
        "version": VERSION,
        "origin": origin,
        "verifier_keys": list(verifier_keys),
        "range": {"start": start, "end": end},
        "prefix": {"size": start, "hashes": [b64.encode(h) for h in prefix.hashes]},
        "entries": rows,
        "bundle": bundle,
        "checkpoints": list(checkpoints),
        "consistency": [
            {
                "first": a,
                "second": b,
                "proof": [b64.encode(h) for h in consistency_proof(source, a, b)],
            }
            for a, b in required_proofs(end, sizes)
        ],
    }


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # I-JSON (RFC 7493), which JCS assumes: a repeated name could be read two ways.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        names = [k for k, _ in pairs]
        raise ExportError(f"duplicate name {next(k for k in names if names.count(k) > 1)!r}")
    return obj


def _reject_constant(name: str) -> None:
    raise ExportError(f"{name} is not JSON")


def loads(data: str | bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate names, no NaN or Infinity."""
    try:
        return json.loads(data, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except ExportError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"not JSON: {e}") from None
    except ValueError as e:  # an integer of more than 4300 digits
        raise ExportError(f"not usable JSON: {e}") from None
    except RecursionError:
        raise ExportError("not usable JSON: nested too deeply") from None


def _object(
    obj: object, keys: set[str], where: str, optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ExportError(f"{where} is not a JSON object")
    if not keys <= obj.keys() <= keys | optional:
        missing = [f"missing {k!r}" for k in sorted(keys - obj.keys())]
        extra = [f"unexpected {k!r}" for k in sorted(obj.keys() - keys - optional)]
        raise ExportError(f"{where}: {', '.join(missing + extra)}")
    return obj


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ExportError(f"{where} is not a list")
    return value


def parse_export(data: str | bytes) -> Export:
    doc = _object(loads(data), _KEYS, "the export")
    if doc["format"] != FORMAT or doc["version"] != VERSION:
        raise ExportError(f"not a {FORMAT} version {VERSION} document")
    origin = doc["origin"]
    if not isinstance(origin, str) or not origin:
        raise ExportError("origin is not a non-empty string")
    keys = _list(doc["verifier_keys"], "verifier_keys")
    if not keys or not all(isinstance(k, str) for k in keys):
        raise ExportError("verifier_keys is not a non-empty list of verifier keys")
    try:
        verifiers = tuple(Verifier.parse(k) for k in keys)
    except NoteError as e:
        raise ExportError(f"verifier_keys: {e}") from None
    span = _object(doc["range"], {"start", "end"}, "range")
    start, end = _size(span["start"], "range.start"), _size(span["end"], "range.end")
    if end < start:
        raise ExportError("range.end is before range.start")
    prefix = _object(doc["prefix"], {"size", "hashes"}, "prefix")
    if _size(prefix["size"], "prefix.size") != start:
        raise ExportError("prefix.size is not range.start")
    hashes = _hashes(prefix["hashes"], "prefix.hashes")
    try:
        compact = CompactRange(start, list(hashes))
    except ValueError as e:
        raise ExportError(f"prefix: {e}") from None
    indices, leaves, nonces, full_urls = _entries(_list(doc["entries"], "entries"))
    checkpoints = _list(doc["checkpoints"], "checkpoints")
    if not checkpoints or not all(isinstance(c, str) for c in checkpoints):
        raise ExportError("checkpoints is not a non-empty list of signed notes")
    return Export(
        origin=origin,
        verifier_keys=verifiers,
        start=start,
        end=end,
        prefix=compact,
        indices=indices,
        leaves=leaves,
        nonces=nonces,
        full_urls=full_urls,
        events=_bundle_events(doc["bundle"]),
        checkpoints=tuple(checkpoints),
        proofs=tuple(_proofs(_list(doc["consistency"], "consistency"))),
    )


def _size(value: object, where: str) -> int:
    if type(value) is not int or not 0 <= value < 1 << 64:
        raise ExportError(f"{where} is not a tree size")
    return value


def _hashes(value: object, where: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise ExportError(f"{where} is not a list of base64 strings")
    try:
        return tuple(b64.decode(h) for h in value)
    except ValueError as e:
        raise ExportError(f"{where}: {e}") from None


def _proofs(rows: list[Any]) -> list[tuple[int, int, tuple[bytes, ...]]]:
    proofs = []
    for k, row in enumerate(rows):
        where = f"consistency[{k}]"
        proof = _object(row, {"first", "second", "proof"}, where)
        first = _size(proof["first"], f"{where}.first")
        second = _size(proof["second"], f"{where}.second")
        proofs.append((first, second, _hashes(proof["proof"], f"{where}.proof")))
    return proofs


def _entries(rows: list[Any]) -> tuple[list[int], list[str], list[str | None], list[str | None]]:
    indices: list[int] = []
    leaves: list[str] = []
    nonces: list[str | None] = []
    full_urls: list[str | None] = []
    for k, row in enumerate(rows):
        # The common case is tested inline: this loop runs once per entry.
        if type(row) is not dict or row.keys() != _ENTRY_KEYS:
            _object(row, _ENTRY_KEYS, f"entries[{k}]")
        index, leaf, nonce, full_url = row["index"], row["leaf"], row["nonce"], row["fullUrl"]
        if (
            type(index) is not int
            or type(leaf) is not str
            or not (type(nonce) is type(full_url) is str or nonce is full_url is None)
        ):
            raise ExportError(
                f"entries[{k}]: index must be an integer, leaf a string, and nonce and"
                " fullUrl both strings or both null"
            )
        indices.append(index)
        leaves.append(leaf)
        nonces.append(nonce)
        full_urls.append(full_url)
    return indices, leaves, nonces, full_urls


def _bundle_events(value: object) -> list[tuple[str, dict[str, Any]]]:
    bundle = _object(value, {"resourceType", "type"}, "bundle", _BUNDLE_KEYS)
    if bundle["resourceType"] != "Bundle" or bundle["type"] != "collection":
        raise ExportError('bundle is not a FHIR Bundle of type "collection"')
    if "entry" not in bundle:
        return []
    rows = bundle["entry"]
    if not isinstance(rows, list) or not rows:
        raise ExportError("bundle.entry is not a non-empty list")
    events = []
    seen: set[str] = set()
    for k, row in enumerate(rows):
        # As in _entries, the well-formed case is tested inline first.
        if type(row) is not dict or row.keys() != _BUNDLE_ENTRY_KEYS:
            _object(row, _BUNDLE_ENTRY_KEYS, f"bundle.entry[{k}]")
        full_url, resource = row["fullUrl"], row["resource"]
        if type(full_url) is not str or not full_url:
            raise ExportError(f"bundle.entry[{k}].fullUrl is not a non-empty string")
        if type(resource) is not dict or resource.get("resourceType") != "AuditEvent":
            raise ExportError(f"bundle.entry[{k}].resource is not an AuditEvent")
        if full_url in seen:  # FHIR bdl-7
            raise ExportError(f"bundle.entry[{k}].fullUrl {full_url!r} is not unique")
        seen.add(full_url)
        events.append((full_url, resource))
    return events
