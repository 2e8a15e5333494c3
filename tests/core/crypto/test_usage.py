from __future__ import annotations

import pytest

from hdsapp.core.crypto.usage import DEFAULT_SEAL_LIMIT, remaining_seals, seal_limit_reached


def test_default_cap_is_2_pow_28() -> None:
    assert DEFAULT_SEAL_LIMIT == 2**28
    assert not seal_limit_reached(2**28 - 1)
    assert seal_limit_reached(2**28)


def test_planned_seals_count() -> None:
    assert not seal_limit_reached(90, planned=10, limit=100)
    assert seal_limit_reached(91, planned=10, limit=100)
    assert not seal_limit_reached(100, planned=0, limit=100)


def test_remaining() -> None:
    assert remaining_seals(0, limit=100) == 100
    assert remaining_seals(100, limit=100) == 0
    assert remaining_seals(150, limit=100) == 0
    assert remaining_seals(5) == 2**28 - 5


@pytest.mark.parametrize(
    ("seals_done", "planned", "limit"), [(-1, 1, 10), (0, -1, 10), (0, 1, 0), (0, 1, 2**32 + 1)]
)
def test_invalid_arguments(seals_done: int, planned: int, limit: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        seal_limit_reached(seals_done, planned=planned, limit=limit)
