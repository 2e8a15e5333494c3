"""Offline verification of an audit export, stopping at the first divergence.

In order: every checkpoint's signature and body; the consistency proofs between successive
checkpoints; then entry by entry the index sequence, the leaf data, the event commitment and
the time and outcome the leaf repeats, the root at every checkpoint size inside the range; and
last the proof from the end of the range to the checkpoint that covers it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from audit import b64
from audit.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from audit.compact_range import CompactRange
from audit.export import Export, required_proofs
from audit.leaf import NONCE_SIZE, LeafError, event_commitment, event_outcome, instant_ms, unpack
from audit.merkle import EMPTY_ROOT, ProofError, verify_consistency
from audit.note import NoteError, Verifier

_sha256 = hashlib.sha256
_Proofs = Mapping[tuple[int, int], Sequence[bytes]]
_sorted_json = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


class VerificationError(Exception):
    """The first thing in an export that does not verify."""


@dataclass(frozen=True, slots=True)
class Report:
    ok: bool
    entries: int
    checkpoint_size: int | None
    key_pinned: bool
    withheld: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoint_size": self.checkpoint_size,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


def verify_export(export: Export, keys: Sequence[Verifier] = ()) -> Report:
    """Check `export` against the pinned `keys`, or against its own keys if none are given:
    those only show that the export is self-consistent, not who signed it."""
    try:
        checkpoints = _checkpoints(export, tuple(keys) or export.verifier_keys, bool(keys))
        proofs = _proofs(export, checkpoints)
        withheld = _entries(export, checkpoints, proofs)
    except VerificationError as e:
        return Report(False, len(export.indices), None, bool(keys), error=str(e))
    return Report(True, len(export.indices), checkpoints[-1].size, bool(keys), withheld)


def _checkpoints(export: Export, verifiers: Sequence[Verifier], pinned: bool) -> list[Checkpoint]:
    checkpoints: list[Checkpoint] = []
    for k, note in enumerate(export.checkpoints):
        try:
            checkpoint, _ = open_checkpoint(note, verifiers)
        except NoteError as e:
            keys = ", ".join(str(v) for v in verifiers)
            whose = "pinned" if pinned else "export's"
            raise VerificationError(f"checkpoint {k}: {e} (the {whose} keys: {keys})") from None
        except CheckpointError as e:
            raise VerificationError(f"checkpoint {k}: {e}") from None
        if checkpoint.origin != export.origin:
            raise VerificationError(
                f"checkpoint {k}: origin {checkpoint.origin!r} is not {export.origin!r}"
            )
        if checkpoints and checkpoint.size <= checkpoints[-1].size:
            raise VerificationError(f"checkpoint {k}: size {checkpoint.size} does not grow")
        if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
            raise VerificationError(
                f"checkpoint {k}: size 0 with a root other than the empty tree's"
            )
        checkpoints.append(checkpoint)
    if checkpoints[-1].size < export.end:
        raise VerificationError(f"no checkpoint covers the range end {export.end}")
    return checkpoints


def _proofs(export: Export, checkpoints: Sequence[Checkpoint]) -> _Proofs:
    """The proofs, once checked to be exactly those the format asks for, and the proofs
    between checkpoints verified."""
    found = [(first, second) for first, second, _ in export.proofs]
    wanted = required_proofs(export.end, [c.size for c in checkpoints])
    if found != wanted:
        raise VerificationError(
            f"consistency: the proofs are for {found}, not {wanted}: the range or the"
            " checkpoints are not those the export was made for"
        )
    proofs = {(first, second): proof for first, second, proof in export.proofs}
    for k, (old, new) in enumerate(itertools.pairwise(checkpoints)):
        if old.size:
            _consistent(old.size, new, old.root_hash, proofs, f"checkpoint {k}")
    return proofs


def _consistent(size: int, to: Checkpoint, root: bytes, proofs: _Proofs, what: str) -> None:
    try:
        verify_consistency(size, to.size, root, to.root_hash, proofs[size, to.size])
    except ProofError as e:
        raise VerificationError(
            f"{what} (size {size}) is not consistent with size {to.size}: {e}"
        ) from None


def _entries(export: Export, checkpoints: Sequence[Checkpoint], proofs: _Proofs) -> int:
    """Checks every entry and the roots; returns how many events were withheld."""
    at_size = {c.size: (k, c) for k, c in enumerate(checkpoints)}
    tree = CompactRange(export.prefix.size, list(export.prefix.hashes))
    _root_at(tree, export.start, at_size)
    events = iter(export.events)
    withheld = 0
    # Leaf hashes wait here until a checkpoint size or the end: one tree.extend per batch.
    pending: list[bytes] = []
    # Locals, because this loop runs once per entry.
    decode, push, end, sha256 = b64.decode, pending.append, export.end, _sha256
    rows = zip(export.indices, export.leaves, export.nonces, export.full_urls, strict=True)
    for expected, (index, encoded, nonce, full_url) in enumerate(rows, export.start):
        if index != expected:
            raise VerificationError(
                f"entry {expected}: entry {index} is in its place (entries missing or reordered)"
            )
        if index >= end:
            raise VerificationError(f"entry {index}: past the end of the range {end}")
        try:
            data = decode(encoded)
            position, time_ms, _, outcome, commitment = unpack(data)
        except ValueError as e:
            raise VerificationError(f"entry {index}: leaf data: {e}") from None
        if position != index:
            raise VerificationError(f"entry {index}: the leaf is for position {position}")
        if full_url is None:
            withheld += 1
        else:
            _event(
                index, nonce, full_url, events,
                time_ms=time_ms, outcome=outcome, commitment=commitment,
            )  # fmt: skip
        push(sha256(b"\x00" + data).digest())
        if index + 1 in at_size:
            tree.extend(pending)
            pending.clear()
            _root_at(tree, export.start, at_size)
    tree.extend(pending)
    if tree.size != export.end:
        raise VerificationError(f"entry {tree.size}: missing: the range ends at {export.end}")
    unclaimed = next(events, None)
    if unclaimed is not None:
        raise VerificationError(f"bundle entry {unclaimed[0]!r}: no leaf commits to it")
    covering = next(c for c in checkpoints if c.size >= export.end)
    if tree.size and covering.size != tree.size:
        _consistent(tree.size, covering, tree.root(), proofs, "the range end")
    return withheld


def _root_at(tree: CompactRange, start: int, at_size: Mapping[int, tuple[int, Checkpoint]]) -> None:
    if tree.size in at_size:
        k, checkpoint = at_size[tree.size]
        if tree.root() != checkpoint.root_hash:
            raise VerificationError(
                f"checkpoint {k} (size {tree.size}): its root is not that of the prefix and"
                f" the entries [{start}, {tree.size})"
            )


def _event(
    index: int,
    nonce_b64: str | None,
    full_url: str,
    events: Iterator[tuple[str, dict[str, Any]]],
    *,
    time_ms: int,
    outcome: int,
    commitment: bytes,
) -> None:
    claimed = next(events, None)
    if claimed is None:
        raise VerificationError(f"entry {index}: its event {full_url!r} is not in the bundle")
    url, event = claimed
    if url != full_url:
        raise VerificationError(
            f"entry {index}: refers to {full_url!r}, the bundle has {url!r} next"
        )
    try:
        nonce = b64.decode(nonce_b64 or "")
    except ValueError as e:
        raise VerificationError(f"entry {index}: nonce: {e}") from None
    if len(nonce) != NONCE_SIZE:
        raise VerificationError(f"entry {index}: the nonce is not {NONCE_SIZE} bytes")
    if not _commits(event, nonce, commitment):
        raise VerificationError(f"entry {index}: event hash mismatch")
    try:
        recorded, result = instant_ms(event.get("recorded")), event_outcome(event)
    except LeafError as e:
        raise VerificationError(f"entry {index}: {e}") from None
    if recorded != time_ms:
        raise VerificationError(
            f"entry {index}: the leaf time {time_ms} is not AuditEvent.recorded"
        )
    if result != outcome:
        raise VerificationError(
            f"entry {index}: the leaf outcome {outcome} is not AuditEvent.outcome"
        )


def _commits(event: dict[str, Any], nonce: bytes, commitment: bytes) -> bool:
    """Sorted compact JSON from the C encoder is RFC 8785 for most events and is tried first:
    equal hashes mean equal bytes, and equal JSON texts mean equal events, so a match is
    sound; only on a mismatch is the slow reference canonicalisation needed."""
    try:
        if _sha256(nonce + _sorted_json(event).encode()).digest() == commitment:
            return True
    except (ValueError, RecursionError):  # JCS refuses these too: a lone surrogate, an
        pass  # infinite float, or nesting too deep
    try:
        return event_commitment(event, nonce) == commitment
    except LeafError:
        return False
