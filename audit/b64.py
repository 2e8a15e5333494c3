"""Standard base64 (RFC 4648 §4), decoded strictly: one text per byte string."""

import binascii


def encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def decode(text: str) -> bytes:
    """Refuses what a lenient decoder would take: characters outside the alphabet, missing
    or misplaced padding, and non-zero unused bits, so that no two texts stand for the same
    bytes."""
    try:
        data = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
    # Re-encoding is the exact test of canonical form: it catches non-zero unused bits and
    # surplus padding alike (binascii's strict mode lets "0000=" through).
    if encode(data) != text:
        raise ValueError("not canonical base64")
    return data
