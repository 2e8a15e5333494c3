"""The leaf data of the audit log, version 1: what the Merkle tree commits to for one entry.

It carries no health data, so leaves, tiles and proofs can leave the database. Layout, all
integers big-endian, total 51 + L bytes:

    offset   size  field
    0        1     version, 0x01
    1        8     position: the entry's index in the log (uint64)
    9        8     time: AuditEvent.recorded in unix milliseconds, truncated (uint64)
    17       1     L, the length of kind, 1..32
    18       L     kind: a short code set by the log (e.g. "rest.read"), [a-z0-9._-]
    18+L     1     outcome: AuditEvent.outcome, one of 0, 4, 8, 12 (FHIR R4 codes)
    19+L     32    commitment = SHA-256(nonce || JCS(AuditEvent)), nonce 32 random bytes,
                   JCS the RFC 8785 canonical JSON of the AuditEvent resource

The random nonce keeps a low-entropy event from being guessed back from its commitment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

VERSION = 1
NONCE_SIZE = 32
COMMITMENT_SIZE = 32
OUTCOMES = frozenset({0, 4, 8, 12})
MAX_KIND = 32

_HEAD = struct.Struct(">BQQB")
_KIND = re.compile(r"[a-z0-9._-]{1,32}")
_UINT64 = 1 << 64
# FHIR instant: seconds and a zone are mandatory.
_INSTANT = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]+))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


class LeafError(ValueError):
    """Leaf data, or an event, that does not fit the leaf format."""


@dataclass(frozen=True, slots=True)
class Leaf:
    position: int
    time_ms: int
    kind: str
    outcome: int
    commitment: bytes

    def __post_init__(self) -> None:
        if not (0 <= self.position < _UINT64 and 0 <= self.time_ms < _UINT64):
            raise LeafError("position and time must fit in an unsigned 64-bit integer")
        if not _KIND.fullmatch(self.kind):
            raise LeafError(f"kind {self.kind!r} is not 1 to {MAX_KIND} of [a-z0-9._-]")
        if self.outcome not in OUTCOMES:
            raise LeafError(f"outcome {self.outcome} is not one of 0, 4, 8, 12")
        if len(self.commitment) != COMMITMENT_SIZE:
            raise LeafError(f"the commitment must be {COMMITMENT_SIZE} bytes")

    def encode(self) -> bytes:
        kind = self.kind.encode("ascii")
        head = _HEAD.pack(VERSION, self.position, self.time_ms, len(kind))
        return head + kind + bytes((self.outcome,)) + self.commitment

    @classmethod
    def decode(cls, data: bytes) -> Leaf:
        return cls(*unpack(data))


def unpack(data: bytes) -> tuple[int, int, str, int, bytes]:
    """(position, time_ms, kind, outcome, commitment) of leaf data, strictly checked; the
    verifier's loop uses it to avoid an object per leaf."""
    try:
        version, position, time_ms, kind_len = _HEAD.unpack_from(data)
    except struct.error:
        raise LeafError(f"leaf data is {len(data)} bytes, shorter than its header") from None
    end = _HEAD.size + kind_len
    if version != VERSION or len(data) != end + 1 + COMMITMENT_SIZE:
        if version != VERSION:
            raise LeafError(f"leaf version {version} is not {VERSION}")
        raise LeafError(f"leaf data is {len(data)} bytes, not {end + 1 + COMMITMENT_SIZE}")
    raw_kind = data[_HEAD.size : end]
    kind = _KINDS.get(raw_kind) or _check_kind(raw_kind)
    outcome = data[end]
    if outcome not in OUTCOMES:
        raise LeafError(f"outcome {outcome} is not one of 0, 4, 8, 12")
    return position, time_ms, kind, outcome, data[end + 1 :]


# A log uses a handful of kinds: remembering those already checked spares a regex per leaf.
_KINDS: dict[bytes, str] = {}


def _check_kind(raw: bytes) -> str:
    kind = raw.decode("latin-1")
    if not _KIND.fullmatch(kind):
        raise LeafError(f"kind {kind!r} is not 1 to {MAX_KIND} of [a-z0-9._-]")
    if len(_KINDS) < 256:
        _KINDS[raw] = kind
    return kind


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_SIZE)


def event_commitment(event: Mapping[str, Any], nonce: bytes) -> bytes:
    if len(nonce) != NONCE_SIZE:
        raise LeafError(f"the nonce must be {NONCE_SIZE} bytes")
    try:
        canonical = rfc8785.dumps(event)
    except (rfc8785.CanonicalizationError, RecursionError) as e:
        raise LeafError(f"the event has no RFC 8785 form: {e}") from None
    return hashlib.sha256(nonce + canonical).digest()


def instant_ms(instant: object) -> int:
    """Unix milliseconds of a FHIR instant, sub-millisecond digits truncated."""
    m = _INSTANT.fullmatch(instant) if isinstance(instant, str) else None
    if m is None:
        raise LeafError(f"{instant!r} is not a FHIR instant")
    seconds, fraction, zone = m.groups()
    try:
        moment = dt.datetime.fromisoformat(seconds + ("+00:00" if zone == "Z" else zone))
    except ValueError as e:
        raise LeafError(f"{instant!r} is not a FHIR instant: {e}") from None
    ms = (moment - _EPOCH) // _MS + (int(fraction[:3].ljust(3, "0")) if fraction else 0)
    if ms < 0:
        raise LeafError(f"{instant!r} is before 1970")
    return ms


def event_outcome(event: Mapping[str, Any]) -> int:
    code = event.get("outcome")
    if code not in ("0", "4", "8", "12"):
        raise LeafError(f"AuditEvent.outcome {code!r} is not one of '0', '4', '8', '12'")
    return int(code)


def leaf_for_event(*, position: int, kind: str, event: Mapping[str, Any], nonce: bytes) -> Leaf:
    """The leaf of an AuditEvent: time and outcome are read from the event itself, so a
    verifier holding the event can check that the leaf says the same."""
    return Leaf(
        position=position,
        time_ms=instant_ms(event.get("recorded")),
        kind=kind,
        outcome=event_outcome(event),
        commitment=event_commitment(event, nonce),
    )
