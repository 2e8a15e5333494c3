"""The export document: what the builder writes and what the parser refuses (exit 2 cases)."""

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from audit import merkle
from audit.export import (
    FORMAT,
    ExportEntry,
    ExportError,
    build_export,
    parse_export,
    required_proofs,
)
from tests.audit.logs import ORIGIN, dumps, make_log

LOG = make_log(12)
DOC = LOG.export(3, 9, [2, 5, 9, 12], withheld=[4])
Doc = dict[str, Any]


def test_document_layout() -> None:
    doc = DOC
    assert list(doc) == [
        "format", "version", "origin", "verifier_keys", "range", "prefix",
        "entries", "bundle", "checkpoints", "consistency",
    ]  # fmt: skip
    assert (doc["format"], doc["version"], doc["origin"]) == (FORMAT, 1, ORIGIN)
    assert doc["verifier_keys"] == [str(LOG.signer.verifier)]
    assert doc["range"] == {"start": 3, "end": 9}
    assert doc["prefix"]["size"] == 3
    assert len(doc["prefix"]["hashes"]) == 2
    assert doc["entries"][0] == {
        "index": 3,
        "leaf": json.loads(dumps(doc))["entries"][0]["leaf"],
        "nonce": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAM=",
        "fullUrl": "urn:uuid:ae-3",
    }
    assert doc["entries"][1]["nonce"] is doc["entries"][1]["fullUrl"] is None
    assert doc["bundle"]["resourceType"] == "Bundle"
    assert doc["bundle"]["type"] == "collection"
    assert doc["bundle"]["entry"][0] == {"fullUrl": "urn:uuid:ae-3", "resource": LOG.events[3]}
    assert [(p["first"], p["second"]) for p in doc["consistency"]] == [(2, 5), (5, 9), (9, 12)]


def test_bundle_id_and_timestamp() -> None:
    doc = build_export(
        origin=ORIGIN, verifier_keys=[str(LOG.signer.verifier)], start=0, entries=[],
        checkpoints=[LOG.checkpoint(1)], source=merkle.MemoryHashSource(LOG.hashes),
        bundle_id="exp-1", timestamp="2025-03-04T10:00:00Z",
    )  # fmt: skip
    assert doc["bundle"] == {
        "resourceType": "Bundle", "id": "exp-1", "type": "collection",
        "timestamp": "2025-03-04T10:00:00Z",
    }  # fmt: skip
    assert parse_export(dumps(doc)).events == []


def test_required_proofs() -> None:
    assert required_proofs(9, [2, 5, 9, 12]) == [(2, 5), (5, 9), (9, 12)]
    assert required_proofs(7, [2, 5, 9, 12]) == [(2, 5), (5, 9), (7, 9), (9, 12)]
    assert required_proofs(0, [0, 3]) == []
    assert required_proofs(3, [3]) == []
    assert required_proofs(4, [3]) == []


def _build(**changes: Any) -> Doc:
    args: dict[str, Any] = {
        "origin": ORIGIN,
        "verifier_keys": [str(LOG.signer.verifier)],
        "start": 0,
        "entries": [ExportEntry(LOG.leaves[0], LOG.events[0], LOG.nonces[0], "urn:uuid:0")],
        "checkpoints": [LOG.checkpoint(1)],
        "source": merkle.MemoryHashSource(LOG.hashes),
    }
    return build_export(**{**args, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"checkpoints": []}, "checkpoints must grow"),
        ({"checkpoints": [LOG.checkpoint(5), LOG.checkpoint(2)]}, "checkpoints must grow"),
        ({"checkpoints": [LOG.checkpoint(2), LOG.checkpoint(2)]}, "checkpoints must grow"),
        ({"start": 1}, "the last must cover the range"),
        ({"entries": [ExportEntry(LOG.leaves[0], LOG.events[0])]}, "entry 0: give event"),
        ({"entries": [ExportEntry(LOG.leaves[0], None, LOG.nonces[0])]}, "entry 0: give event"),
        ({"entries": [ExportEntry(LOG.leaves[0], LOG.events[0], LOG.nonces[0])]}, "give event"),
    ],
)
def test_builder_refusals(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        _build(**changes)


# -- parser --------------------------------------------------------------------------------


def _edit(change: Callable[[Doc], None]) -> str:
    doc = copy.deepcopy(DOC)
    change(doc)
    return dumps(doc)


def _set(*path: Any, value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _delete(*path: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


GOOD = dumps(DOC)
SHAPES: list[tuple[str, str | bytes, str]] = [
    ("empty", "", "not JSON"),
    ("truncated", GOOD[: len(GOOD) // 2], "not JSON"),
    ("not UTF-8", b"\xff\xfe{}", "not JSON"),
    ("NaN", GOOD.replace('"version": 1', '"version": NaN'), "NaN is not JSON"),
    ("duplicate name", GOOD.replace('"version": 1', '"version": 1, "version": 1'),
     "duplicate name 'version'"),
    ("deep", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("huge integer", GOOD.replace('"version": 1', '"version": 1' + "0" * 5000),
     "not usable JSON: Exceeds the limit"),
    ("array", "[]", "the export is not a JSON object"),
    ("missing key", _edit(_delete("bundle")), "the export: missing 'bundle'$"),
    ("extra key", _edit(_set("extra", value=1)), "the export: unexpected 'extra'$"),
    ("format", _edit(_set("format", value="other")), "not a hdsapp-audit-export version 1"),
    ("version", _edit(_set("version", value=2)), "not a hdsapp-audit-export version 1"),
    ("origin type", _edit(_set("origin", value=1)), "origin is not a non-empty string"),
    ("origin empty", _edit(_set("origin", value="")), "origin is not a non-empty string"),
    ("keys type", _edit(_set("verifier_keys", value="k")), "verifier_keys is not a list"),
    ("keys empty", _edit(_set("verifier_keys", value=[])), "verifier_keys is not a non-empty"),
    ("keys items", _edit(_set("verifier_keys", value=[1])), "verifier_keys is not a non-empty"),
    ("key malformed", _edit(_set("verifier_keys", 0, value="a+b+c")), "verifier_keys: not a"),
    ("range type", _edit(_set("range", value=[3, 9])), "range is not a JSON object"),
    ("range bool", _edit(_set("range", "start", value=True)), "range.start is not a tree size"),
    ("range negative", _edit(_set("range", "end", value=-1)), "range.end is not a tree size"),
    ("range huge", _edit(_set("range", "end", value=2**64)), "range.end is not a tree size"),
    ("range order", _edit(_set("range", "end", value=2)), "range.end is before range.start"),
    ("prefix size", _edit(_set("prefix", "size", value=4)), "prefix.size is not range.start"),
    ("prefix hashes", _edit(_set("prefix", "hashes", value="x")), "prefix.hashes is not a list"),
    ("prefix hash type", _edit(_set("prefix", "hashes", 0, value=1)), "prefix.hashes is not"),
    ("prefix base64", _edit(_set("prefix", "hashes", 0, value="AA")), "prefix.hashes: not valid"),
    ("prefix count", _edit(_delete("prefix", "hashes", 0)), "prefix: a compact range of size 3"),
    ("prefix hash size", _edit(_set("prefix", "hashes", 0, value="AAAA")), "prefix: a hash is 3"),
    ("entries type", _edit(_set("entries", value={})), "entries is not a list"),
    ("entry type", _edit(_set("entries", 0, value=[])), r"entries\[0\] is not a JSON object"),
    ("entry keys", _edit(_delete("entries", 1, "nonce")), r"entries\[1\]: missing 'nonce'$"),
    ("entry index", _edit(_set("entries", 0, "index", value="3")), r"entries\[0\]: index must"),
    ("entry leaf", _edit(_set("entries", 0, "leaf", value=None)), r"entries\[0\]: index must"),
    ("entry half withheld", _edit(_set("entries", 0, "nonce", value=None)), r"entries\[0\]:"),
    ("entry nonce type", _edit(_set("entries", 0, "nonce", value=1)), r"entries\[0\]:"),
    ("checkpoints type", _edit(_set("checkpoints", value="n")), "checkpoints is not a list"),
    ("checkpoints empty", _edit(_set("checkpoints", value=[])), "checkpoints is not a non-empty"),
    ("checkpoint type", _edit(_set("checkpoints", 0, value={})), "checkpoints is not a non-empty"),
    ("consistency type", _edit(_set("consistency", value={})), "consistency is not a list"),
    ("proof keys", _edit(_delete("consistency", 0, "proof")), r"consistency\[0\]: missing"),
    ("proof size", _edit(_set("consistency", 0, "first", value=1.5)),
     r"consistency\[0\]\.first is not a tree size"),
    ("proof hashes", _edit(_set("consistency", 1, "proof", 0, value="?")),
     r"consistency\[1\]\.proof: not valid base64"),
    ("bundle type", _edit(_set("bundle", value=[])), "bundle is not a JSON object"),
    ("bundle resource", _edit(_set("bundle", "resourceType", value="Patient")),
     "not a FHIR Bundle"),
    ("bundle kind", _edit(_set("bundle", "type", value="searchset")), "not a FHIR Bundle"),
    ("bundle total", _edit(_set("bundle", "total", value=5)), r"bundle: unexpected 'total'$"),
    ("bundle entry empty", _edit(_set("bundle", "entry", value=[])), "bundle.entry is not a non"),
    ("bundle entry type", _edit(_set("bundle", "entry", value={})), "bundle.entry is not a non"),
    ("bundle entry keys", _edit(_set("bundle", "entry", 0, "search", value={})),
     r"bundle\.entry\[0\]: unexpected 'search'$"),
    ("bundle fullUrl", _edit(_set("bundle", "entry", 0, "fullUrl", value="")),
     r"bundle\.entry\[0\]\.fullUrl is not"),
    ("bundle resource type", _edit(_set("bundle", "entry", 0, "resource", value=[])),
     r"bundle\.entry\[0\]\.resource is not an AuditEvent"),
    ("bundle fullUrl twice", _edit(_set("bundle", "entry", 1, "fullUrl", value="urn:uuid:ae-3")),
     r"bundle\.entry\[1\]\.fullUrl 'urn:uuid:ae-3' is not unique"),
    ("bundle patient",
     _edit(_set("bundle", "entry", 0, "resource", value={"resourceType": "Patient"})),
     r"bundle\.entry\[0\]\.resource is not an AuditEvent"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_parser_refuses(text: str | bytes, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        parse_export(text)


def test_parser_accepts_bytes_and_text() -> None:
    assert parse_export(GOOD.encode()) == parse_export(GOOD)
