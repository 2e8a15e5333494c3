"""The offline verifier: exports that hold, and tampered exports named at their first
divergence."""

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.export import Export, parse_export
from audit.leaf import Leaf, event_commitment
from audit.note import Signer, Verifier
from audit.verify import Report, verify_export
from tests.audit.logs import ORIGIN, Log, audit_event, dumps, make_log

LOG = make_log(40)


def check(doc: dict[str, Any], keys: list[Verifier] | None = None) -> Report:
    return verify_export(parse_export(dumps(doc)), keys or [])


def test_round_trip_with_a_pinned_key() -> None:
    report = check(LOG.export(10, 30, [8, 16, 25, 30, 40]), [LOG.signer.verifier])
    assert report == Report(True, 20, 40, key_pinned=True)
    assert report.to_json() == {"ok": True, "entries": 20, "checkpoint_size": 40}


def test_round_trip_with_the_embedded_key_is_not_pinned() -> None:
    report = check(LOG.export(0, 40))
    assert report.ok
    assert not report.key_pinned


def test_withheld_entries_count_in_the_tree_only() -> None:
    doc = LOG.export(5, 20, withheld=[5, 6, 12])
    assert [e["nonce"] is None for e in doc["entries"]].count(True) == 3
    assert len(doc["bundle"]["entry"]) == 12
    assert check(doc) == Report(True, 15, 40, key_pinned=False, withheld=3)


def test_all_withheld_leaves_no_bundle_entries() -> None:
    doc = LOG.export(5, 8, withheld=[5, 6, 7])
    assert "entry" not in doc["bundle"]
    assert check(doc).withheld == 3


@pytest.mark.parametrize(
    ("start", "end", "sizes"),
    [
        (0, 0, [0]),
        (0, 0, [5]),
        (7, 7, [7, 9]),
        (7, 7, [3, 40]),
        (0, 1, [1]),
        (0, 40, [40]),
        (39, 40, [1, 2, 40]),
        (4, 12, [0, 4, 12, 13]),
    ],
)
def test_round_trip_shapes(start: int, end: int, sizes: list[int]) -> None:
    assert check(LOG.export(start, end, sizes)).ok


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_round_trip_property(data: st.DataObject) -> None:
    end = data.draw(st.integers(0, 40))
    start = data.draw(st.integers(0, end))
    inside = data.draw(st.sets(st.integers(0, 40), max_size=4))
    covering = data.draw(st.integers(end, 40))
    report = check(LOG.export(start, end, sorted(inside | {covering})))
    assert report.ok, report.error


# -- tampering -----------------------------------------------------------------------------

A, B, SIZES = 10, 30, [8, 16, 25, 40]
Doc = dict[str, Any]


def _set_event(k: int, key: str, value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        doc["bundle"]["entry"][k]["resource"][key] = value

    return change


def _swap(listing: Callable[[Doc], list[Any]], i: int, j: int) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        rows = listing(doc)
        rows[i], rows[j] = rows[j], rows[i]

    return change


def _entry_field(k: int, key: str, value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        doc["entries"][k][key] = value

    return change


def _remove(k: int) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        del doc["entries"][k]
        del doc["bundle"]["entry"][k]

    return change


def _leaf(k: int, **changes: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        leaf = Leaf.decode(base64.b64decode(doc["entries"][k]["leaf"]))
        fields = {
            "position": leaf.position, "time_ms": leaf.time_ms, "kind": leaf.kind,
            "outcome": leaf.outcome, "commitment": leaf.commitment, **changes,
        }  # fmt: skip
        doc["entries"][k]["leaf"] = base64.b64encode(Leaf(**fields).encode()).decode()

    return change


def _checkpoint_text(k: int, old: str, new: str) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        assert old in doc["checkpoints"][k]
        doc["checkpoints"][k] = doc["checkpoints"][k].replace(old, new, 1)

    return change


def _proof_hash(k: int) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        proof = doc["consistency"][k]["proof"]
        proof[0] = base64.b64encode(bytes(32)).decode()

    return change


def _swap_leaves(doc: Doc) -> None:
    rows = doc["entries"]
    rows[4]["leaf"], rows[5]["leaf"] = rows[5]["leaf"], rows[4]["leaf"]


def _prefix(doc: Doc) -> None:
    doc["prefix"]["hashes"][0] = base64.b64encode(bytes(32)).decode()


def _drop_proof(doc: Doc) -> None:
    del doc["consistency"][0]


def _extra_entry(doc: Doc) -> None:
    doc["entries"].append({**doc["entries"][-1], "index": B, "nonce": None, "fullUrl": None})


def _extra_bundle_entry(doc: Doc) -> None:
    extra = copy.deepcopy(doc["bundle"]["entry"][0])
    extra["fullUrl"] = "urn:uuid:unlogged"
    doc["bundle"]["entry"].append(extra)


def _drop_last_bundle_entry(doc: Doc) -> None:
    doc["bundle"]["entry"].pop()


def _reorder_checkpoints(doc: Doc) -> None:
    doc["checkpoints"][0], doc["checkpoints"][1] = doc["checkpoints"][1], doc["checkpoints"][0]


def _cut_range(doc: Doc) -> None:
    doc["range"]["end"] = B + 1


TAMPERING: list[tuple[str, Callable[[Doc], None], str]] = [
    ("event", _set_event(7, "outcome", "8"), "entry 17: event hash mismatch"),
    ("event added field", _set_event(0, "x", 1), "entry 10: event hash mismatch"),
    ("nonce", _entry_field(3, "nonce", base64.b64encode(bytes(32)).decode()),
     "entry 13: event hash mismatch"),
    ("swapped entries", _swap(lambda d: d["entries"], 4, 5),
     "entry 14: entry 15 is in its place"),
    ("swapped events", _swap(lambda d: d["bundle"]["entry"], 4, 5),
     "entry 14: refers to 'urn:uuid:ae-14', the bundle has 'urn:uuid:ae-15' next"),
    ("swapped leaves", _swap_leaves, "entry 14: the leaf is for position 15"),
    ("removed entry", _remove(6), "entry 16: entry 17 is in its place"),
    ("removed last entry", _remove(-1), "entry 29: missing: the range ends at 30"),
    ("entry past the end", _extra_entry, "entry 30: past the end of the range 30"),
    ("range end moved", _cut_range,
     "consistency: the proofs are for [(8, 16), (16, 25), (25, 40), (30, 40)], not [(8, 16),"
     " (16, 25), (25, 40), (31, 40)]: the range or the checkpoints are not those"),
    ("leaf kind", _leaf(2, kind="rest.write"),
     "checkpoint 1 (size 16): its root is not that of the prefix and the entries [10, 16)"),
    ("leaf after the last checkpoint inside", _leaf(18, kind="rest.write"),
     "the range end (size 30) is not consistent with size 40"),
    ("leaf time", _leaf(1, time_ms=0), "entry 11: the leaf time 0 is not AuditEvent.recorded"),
    ("leaf outcome", _leaf(1, outcome=12),
     "entry 11: the leaf outcome 12 is not AuditEvent.outcome"),
    ("leaf bytes", _entry_field(0, "leaf", "AAAA"), "entry 10: leaf data: leaf data is 3 bytes"),
    ("leaf base64", _entry_field(0, "leaf", "AA"), "entry 10: leaf data: not valid base64"),
    ("nonce base64", _entry_field(0, "nonce", "A"), "entry 10: nonce: not valid base64"),
    ("nonce length", _entry_field(0, "nonce", "AAAA"), "entry 10: the nonce is not 32 bytes"),
    ("extra bundle entry", _extra_bundle_entry,
     "bundle entry 'urn:uuid:unlogged': no leaf commits"),
    ("missing bundle entry", _drop_last_bundle_entry,
     "entry 29: its event 'urn:uuid:ae-29' is not in the bundle"),
    ("prefix", _prefix,
     "checkpoint 1 (size 16): its root is not that of the prefix and the entries [10, 16)"),
    ("checkpoint root", _checkpoint_text(3, "\n40\n", "\n41\n"),
     "checkpoint 3: the signature by hds.example/audit+"),
    ("checkpoint order", _reorder_checkpoints, "checkpoint 1: size 8 does not grow"),
    ("consistency proof", _proof_hash(0),
     "checkpoint 0 (size 8) is not consistent with size 16: the proof does not lead"),
    ("consistency proof missing", _drop_proof,
     "consistency: the proofs are for [(16, 25), (25, 40), (30, 40)], not [(8, 16), "),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"), [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING]
)
def test_tampering_is_named(change: Callable[[Doc], None], message: str) -> None:
    doc = LOG.export(A, B, SIZES)
    change(doc)
    report = check(doc)
    assert not report.ok
    assert report.error is not None
    assert report.error.startswith(message), report.error
    assert report.to_json() == {"ok": False, "entries": len(doc["entries"]),
                                "checkpoint_size": None, "error": report.error}  # fmt: skip


def test_wrong_pinned_key() -> None:
    other = Signer.generate(ORIGIN).verifier
    report = check(LOG.export(A, B, SIZES), [other])
    assert report.error == (f"checkpoint 0: no signature by a known key (the pinned keys: {other})")


def test_substituted_embedded_key_is_caught_by_pinning() -> None:
    forger = Log(signer=Signer.generate(ORIGIN))
    for event, nonce in zip(LOG.events, LOG.nonces, strict=True):
        forger.append({**event, "outcome": "0"}, nonce)
    doc = forger.export(A, B, SIZES)
    assert check(doc).ok
    assert check(doc, [LOG.signer.verifier]).error == (
        f"checkpoint 0: no signature by a known key (the pinned keys: {LOG.signer.verifier})"
    )


def _resigned(log: Log, change: Callable[[list[str]], None]) -> Report:
    doc = log.export(A, B, SIZES)
    change(doc["checkpoints"])
    return check(doc)


def test_checkpoint_origin_must_be_the_exports() -> None:
    def change(notes: list[str]) -> None:
        notes[1] = LOG.checkpoint(16, origin="elsewhere.example")

    assert _resigned(LOG, change).error == (
        "checkpoint 1: origin 'elsewhere.example' is not 'hds.example/audit'"
    )


def test_checkpoint_body_must_parse() -> None:
    def change(notes: list[str]) -> None:
        notes[0] = sign_checkpoint_text("hds.example/audit\n08\nAAAA\n")

    def sign_checkpoint_text(text: str) -> str:
        from audit.note import sign_note

        return sign_note(text, [LOG.signer])

    assert _resigned(LOG, change).error == (
        "checkpoint 0: tree size '08' is not a decimal without leading zeros"
    )


def test_checkpoint_with_a_lone_surrogate() -> None:
    doc = LOG.export(A, B, SIZES)
    text = dumps(doc).replace("hds.example/audit\\n8\\n", "hds.example/audit\\ud800\\n8\\n", 1)
    report = verify_export(parse_export(text), [])
    assert (report.error or "").startswith("checkpoint 0: the note is not valid Unicode text")


def test_empty_tree_checkpoint_needs_the_empty_root() -> None:
    def change(notes: list[str]) -> None:
        notes.insert(0, sign_checkpoint(Checkpoint(ORIGIN, 0, bytes(32)), [LOG.signer]))

    assert _resigned(LOG, change).error == (
        "checkpoint 0: size 0 with a root other than the empty tree's"
    )


def test_no_checkpoint_covers_the_range() -> None:
    def change(notes: list[str]) -> None:
        del notes[-1]

    assert _resigned(LOG, change).error == "no checkpoint covers the range end 30"


def test_leaf_committing_to_a_bad_instant() -> None:
    log = Log(signer=LOG.signer)
    event = {**audit_event(0), "recorded": "yesterday"}
    nonce = bytes(32)
    leaf = Leaf(0, 0, "rest.read", 4, event_commitment(event, nonce))
    log.append(event, nonce, leaf.encode())
    assert check(log.export(0, 1)).error == "entry 0: 'yesterday' is not a FHIR instant"


@pytest.mark.parametrize(
    "extra",
    [
        {"\U0001f600": 1, "\uff61": 2},  # UTF-16 and code point orders differ
        {"n": 1.0},  # JCS writes 1, json.dumps 1.0
        {"n": 1e21},
    ],
)
def test_events_outside_the_fast_path_still_verify(extra: dict[str, Any]) -> None:
    log = Log(signer=LOG.signer)
    log.append({**audit_event(0), **extra}, bytes(32))
    assert check(log.export(0, 1)).ok


def test_an_event_that_cannot_be_canonicalised_fails() -> None:
    log = Log(signer=LOG.signer)
    log.append(audit_event(0), bytes(32))
    text = dumps(log.export(0, 1))
    for bad in ('"display": "\\ud800"', '"display": 1e999'):
        report = verify_export(parse_export(text.replace('"display": "hdsapp"', bad)), [])
        assert report.error == "entry 0: event hash mismatch"


def test_an_event_nested_too_deeply_fails() -> None:
    log = Log(signer=LOG.signer)
    log.append(audit_event(0), bytes(32))
    export = parse_export(dumps(log.export(0, 1)))
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    export.events[0][1]["deep"] = deep
    assert verify_export(export).error == "entry 0: event hash mismatch"


def test_parsed_export_keeps_entries_as_columns() -> None:
    export = parse_export(dumps(LOG.export(A, B, SIZES, withheld=[11])))
    assert isinstance(export, Export)
    assert export.indices == list(range(A, B))
    assert export.nonces[1] is None
    assert export.full_urls[:3] == ["urn:uuid:ae-10", None, "urn:uuid:ae-12"]
    assert len(export.events) == B - A - 1
    assert export.prefix.root() == merkle.root(LOG.hashes[:A])
