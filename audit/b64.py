"""Standard base64 (RFC 4648 §4), decoded strictly: one text per byte string."""

import binascii

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


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
    # Only a padded text has unused bits, in its last character before the padding.
    if text[-1:] == "=":
        last, unused = (text[-3], 0x0F) if text[-2] == "=" else (text[-2], 0x03)
        if _ALPHABET.index(last) & unused:
            raise ValueError("not canonical base64")
    return data
