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
_STR_FIELDS = ("group_id", "thread_id", "record_id", "author_id")
_VERSION_FIELDS = ("kek_version", "dek_version")


class RecordKind(enum.StrEnum):
    """What a sealed value is; one value per kind of protected column."""

    MESSAGE = "message"
    ATTACHMENT = "attachment"
    THREAD_TITLE = "thread_title"
    PATIENT_IDENTITY = "patient_identity"
    WRAPPED_KEK = "wrapped_kek"
    WRAPPED_DEK = "wrapped_dek"


@dataclass(frozen=True, slots=True)
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

    def __post_init__(self) -> None:
        # Validates and encodes in one pass, once per object: this runs for every seal and open.
        if type(self.kind) is not RecordKind:
            raise TypeError("kind must be a RecordKind")
        parts = [_KIND_PREFIX[self.kind]]
        for name in _STR_FIELDS:
            text = getattr(self, name)
            if text is None:
                parts.append(_ABSENT)
            elif type(text) is str and text:
                data = text.encode()
                parts += (_PRESENT_U32.pack(1, len(data)), data)
            else:
                raise ValueError(f"{name} must be a non-empty str or None")
        for name in _VERSION_FIELDS:
            version = getattr(self, name)
            if version is None:
                parts.append(_ABSENT)
            elif _is_int_in(version, MAX_U32):
                parts.append(_PRESENT_U32.pack(1, version))
            else:
                raise ValueError(f"{name} must be an int in [0, 2**32)")
        if type(self.last_chunk) is not bool:
            raise ValueError("last_chunk must be a bool")
        if self.chunk_index is None:
            if self.last_chunk:
                raise ValueError("last_chunk needs a chunk_index")
            parts.append(_ABSENT)
        elif _is_int_in(self.chunk_index, MAX_U64):
            parts.append(_CHUNK.pack(1, self.chunk_index, self.last_chunk))
        else:
            raise ValueError("chunk_index must be an int in [0, 2**64)")
        object.__setattr__(self, "_encoded", b"".join(parts))

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


def _is_int_in(value: object, maximum: int) -> bool:
    # type() rather than isinstance(): True as a version is a bug, not version 1.
    return type(value) is int and 0 <= value <= maximum
