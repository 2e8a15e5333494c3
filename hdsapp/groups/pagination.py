"""Opaque keyset cursors for ``{"items": [...], "next_cursor": ...}`` lists.

A cursor is the sort key of the last item returned, as base64url JSON; it is not a secret and
grants nothing (every page is filtered by the policy again).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from typing import Any

from hdsapp.core.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def encode_cursor(*key: Any) -> str:
    parts = [k.isoformat() if isinstance(k, dt.datetime) else str(k) for k in key]
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The key encoded by ``encode_cursor``, converted to ``types`` (str, uuid.UUID, datetime)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
        if not isinstance(parts, list) or len(parts) != len(types):
            raise ValueError
        return tuple(_convert(part, kind) for part, kind in zip(parts, types, strict=True))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("The cursor is not valid.", code="invalid-cursor") from None


def _convert(part: object, kind: type) -> Any:
    if not isinstance(part, str):
        raise ValueError
    if kind is uuid.UUID:
        return uuid.UUID(part)
    if kind is dt.datetime:
        moment = dt.datetime.fromisoformat(part)
        if moment.tzinfo is None:
            raise ValueError
        return moment
    return part
