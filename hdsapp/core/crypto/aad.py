"""Associated data: the canonical identity of a sealed record.

Every seal binds its ciphertext to the record it belongs to, so a ciphertext copied to another row,
thread, group or author fails to open. The identity is encoded once, canonically (no separators to
escape, no optional-field ambiguity), and that encoding is part of envelope format v1: changing it
breaks every stored envelope, so the golden vectors in tests pin it.

Encoding (``AssociatedData.encode()``), all integers big-endian::

    0x01                                     AD encoding version
    str   kind                               e.g. "message"
    ostr  group_id, thread_id, record_id, author_id
    ou32  kek_version, dek_version
    chunk 0x00                               not a chunk
          | 0x01 u64 index u8 last (0x00/0x01)

    str  = u32 length || UTF-8 bytes
    ostr = 0x00 (absent) | 0x01 str
    ou32 = 0x00 (absent) | 0x01 u32
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from dataclasses import dataclass, field

AD_ENCODING_V1 = 0x01
MAX_U32 = 2**32 - 1
MAX_U64 = 2**64 - 1

_U32 = struct.Struct(">I")
_PRESENT_U32 = struct.Struct(">BI")  # presence byte 0x01, then a length or a version
_CHUNK = struct.Struct(">BQB")
_ABSENT = b"\x00"


class RecordKind(enum.StrEnum):
    """What a sealed value is; one value per kind of protected column."""

    MESSAGE = "message"
    ATTACHMENT = "attachment"
    THREAD_TITLE = "thread_title"
    PATIENT_IDENTITY = "patient_identity"
    WRAPPED_KEK = "wrapped_kek"
    WRAPPED_DEK = "wrapped_dek"
    TASK = "task"  # a task's description (hdsapp.threads)


@dataclass(frozen=True, init=False)
class AssociatedData:
    """Identity of one sealed value. Ids are strings (``str(uuid)``, ``str(int)``): pass them the
    same way at seal and open time, since ``"7"`` and ``"07"`` are different identities.

    ``None`` means "not applicable" and is encoded differently from any string, so leaving a field
    out can never collide with setting it. Empty strings are refused to catch ``""`` defaults.
    """

    kind: RecordKind
    group_id: str | None = None
    thread_id: str | None = None
    record_id: str | None = None
    author_id: str | None = None
    kek_version: int | None = None
    dek_version: int | None = None
    chunk_index: int | None = None
    last_chunk: bool = False

    _encoded: bytes = field(init=False, repr=False, compare=False)

    # Hand-written rather than generated: one is built for every seal and every open, and the
    # generated frozen __init__ (one object.__setattr__ per field) plus a __post_init__ cost more
    # than the AES-GCM work on a 1 KiB message. Keep the parameters in step with the fields.
    def __init__(
        self,
        kind: RecordKind,
        *,
        group_id: str | None = None,
        thread_id: str | None = None,
        record_id: str | None = None,
        author_id: str | None = None,
        kek_version: int | None = None,
        dek_version: int | None = None,
        chunk_index: int | None = None,
        last_chunk: bool = False,
    ) -> None:
        if type(kind) is not RecordKind:
            raise TypeError("kind must be a RecordKind")
        if type(last_chunk) is not bool:
            raise ValueError("last_chunk must be a bool")
        if chunk_index is None:
            if last_chunk:
                raise ValueError("last_chunk needs a chunk_index")
            chunk = _ABSENT
        elif _is_int_in(chunk_index, MAX_U64):
            chunk = _CHUNK.pack(1, chunk_index, last_chunk)
        else:
            raise ValueError("chunk_index must be an int in [0, 2**64)")
        encoded = b"".join(
            (
                _KIND_PREFIX[kind],
                _optional_str("group_id", group_id),
                _optional_str("thread_id", thread_id),
                _optional_str("record_id", record_id),
                _optional_str("author_id", author_id),
                _optional_u32("kek_version", kek_version),
                _optional_u32("dek_version", dek_version),
                chunk,
            )
        )
        # Straight into __dict__: the frozen __setattr__ refuses, by design, everyone else.
        self.__dict__.update(
            kind=kind,
            group_id=group_id,
            thread_id=thread_id,
            record_id=record_id,
            author_id=author_id,
            kek_version=kek_version,
            dek_version=dek_version,
            chunk_index=chunk_index,
            last_chunk=last_chunk,
            _encoded=encoded,
        )

    def for_chunk(self, index: int, *, last: bool) -> AssociatedData:
        """The identity of chunk ``index`` of this (unchunked) record."""
        if self.chunk_index is not None:
            raise ValueError("already a chunk identity")
        return dataclasses.replace(self, chunk_index=index, last_chunk=last)

    def encode(self) -> bytes:
        """The canonical bytes fed to AES-GCM as associated data (see the module docstring)."""
        return self._encoded


def _encode_kind(kind: RecordKind) -> bytes:
    data = kind.value.encode()
    return bytes((AD_ENCODING_V1,)) + _U32.pack(len(data)) + data


# The version byte and the length-prefixed kind, computed once per kind.
_KIND_PREFIX = {kind: _encode_kind(kind) for kind in RecordKind}


def _optional_str(name: str, text: str | None) -> bytes:
    if text is None:
        return _ABSENT
    if type(text) is str and text:
        data = text.encode()
        return _PRESENT_U32.pack(1, len(data)) + data
    raise ValueError(f"{name} must be a non-empty str or None")


def _optional_u32(name: str, version: int | None) -> bytes:
    if version is None:
        return _ABSENT
    if _is_int_in(version, MAX_U32):
        return _PRESENT_U32.pack(1, version)
    raise ValueError(f"{name} must be an int in [0, 2**32)")


def _is_int_in(value: object, maximum: int) -> bool:
    # type() rather than isinstance(): True as a version is a bug, not version 1.
    return type(value) is int and 0 <= value <= maximum
