"""When a data key has sealed enough: the pure rule, for the key store that does the counting.

AES-GCM with random 96-bit nonces is safe for up to 2**32 seals per key (NIST SP 800-38D §8.3):
past that, the chance of a nonce repeating, which would expose the authentication key, is above
2**-32. The default cap of 2**28 keeps that chance below 2**-41 with room for counting lag
between processes. Every chunk of an attachment is one seal.
"""

from __future__ import annotations

DEFAULT_SEAL_LIMIT = 2**28


def remaining_seals(seals_done: int, *, limit: int = DEFAULT_SEAL_LIMIT) -> int:
    """How many more seals the key may make (0 once the cap is reached)."""
    _check(seals_done, limit)
    return max(0, limit - seals_done)


def seal_limit_reached(
    seals_done: int, *, planned: int = 1, limit: int = DEFAULT_SEAL_LIMIT
) -> bool:
    """True if sealing ``planned`` more values would take the key past its cap: rotate first.

    ``planned`` is the number of envelopes about to be made (an attachment's chunk count).
    """
    _check(seals_done, limit)
    if planned < 0:
        raise ValueError("planned must be >= 0")
    return seals_done + planned > limit


def _check(seals_done: int, limit: int) -> None:
    if seals_done < 0:
        raise ValueError("seals_done must be >= 0")
    if not 1 <= limit <= 2**32:
        raise ValueError("limit must be in [1, 2**32]")
