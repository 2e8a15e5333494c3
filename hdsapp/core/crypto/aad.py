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
from dataclasses import dataclass

AD_ENCODING_V1 = 0x01
MAX_U32 = 2**32 - 1
MAX_U64 = 2**64 - 1

_U32 = struct.Struct(">I")
_CHUNK = struct.Struct(">BQB")
_ABSENT = b"\x00"
_PRESENT = b"\x01"


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

    def __post_init__(self) -> None:
        if not isinstance(self.kind, RecordKind):
            raise TypeError("kind must be a RecordKind")
        for name in ("group_id", "thread_id", "record_id", "author_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty str or None")
        for name in ("kek_version", "dek_version"):
            version = getattr(self, name)
            if version is not None and not _is_int_in(version, MAX_U32):
                raise ValueError(f"{name} must be an int in [0, 2**32)")
        if self.chunk_index is None:
            if self.last_chunk:
                raise ValueError("last_chunk needs a chunk_index")
        elif not _is_int_in(self.chunk_index, MAX_U64):
            raise ValueError("chunk_index must be an int in [0, 2**64)")

    def for_chunk(self, index: int, *, last: bool) -> AssociatedData:
        """The identity of chunk ``index`` of this (unchunked) record."""
        if self.chunk_index is not None:
            raise ValueError("already a chunk identity")
        return dataclasses.replace(self, chunk_index=index, last_chunk=last)

    def encode(self) -> bytes:
        """The canonical bytes fed to AES-GCM as associated data (see the module docstring)."""
        parts = [bytes((AD_ENCODING_V1,)), _str(self.kind.value)]
        for text in (self.group_id, self.thread_id, self.record_id, self.author_id):
            parts.append(_ABSENT if text is None else _PRESENT + _str(text))
        for version in (self.kek_version, self.dek_version):
            parts.append(_ABSENT if version is None else _PRESENT + _U32.pack(version))
        if self.chunk_index is None:
            parts.append(_ABSENT)
        else:
            parts.append(_CHUNK.pack(1, self.chunk_index, self.last_chunk))
        return b"".join(parts)


def _str(text: str) -> bytes:
    data = text.encode("utf-8")
    return _U32.pack(len(data)) + data


def _is_int_in(value: object, maximum: int) -> bool:
    # bool is an int subclass; True as a version is a bug, not version 1.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum
