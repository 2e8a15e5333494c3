"""Standard base64 (RFC 4648 §4), decoded strictly: one text per byte string."""

import base64
import binascii


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(text: str) -> bytes:
    """Refuses what a lenient decoder would take: characters outside the alphabet, missing
    padding, and non-zero unused bits, so that no two texts stand for the same bytes."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
    if encode(data) != text:
        raise ValueError("not canonical base64")
    return data
