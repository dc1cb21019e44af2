"""backoff(): full jitter under a doubling, capped ceiling; reset() after a success."""

from __future__ import annotations

import random
from itertools import islice

import pytest

from ferry_agent.transport import backoff


def test_the_ceiling_doubles_up_to_the_cap() -> None:
    delays = backoff(base=1.0, cap=30.0, random=lambda: 0.5)
    assert list(islice(delays, 8)) == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]


def test_delays_are_drawn_from_the_injected_source_across_the_whole_range() -> None:
    draws = iter([0.0, 0.25, 0.999])
    delays = backoff(base=2.0, cap=100.0, random=lambda: next(draws))
    assert list(islice(delays, 3)) == [0.0, 0.25 * 4.0, 0.999 * 8.0]


def test_reset_starts_again_from_base() -> None:
    delays = backoff(base=1.0, cap=60.0, random=lambda: 1.0)
    list(islice(delays, 5))
    assert delays.attempts == 5 and delays.ceiling == 32.0
    delays.reset()
    assert delays.attempts == 0
    assert next(delays) == 1.0


def test_same_seed_same_delays_and_never_above_the_cap() -> None:
    first = list(islice(backoff(0.5, 20.0, random=random.Random(7).random), 200))
    second = list(islice(backoff(0.5, 20.0, random=random.Random(7).random), 200))
    assert first == second
    assert all(0.0 <= delay < 20.0 for delay in first)
    assert len(set(first)) > 150  # jittered, not a fixed schedule


def test_many_failures_do_not_overflow() -> None:
    delays = backoff(base=0.1, cap=5.0, random=lambda: 0.999)
    for _ in range(5000):
        next(delays)
    assert delays.ceiling == 5.0
    assert next(delays) == pytest.approx(0.999 * 5.0)


def test_the_default_source_is_random() -> None:
    delays = list(islice(backoff(1.0, 1.0), 50))
    assert all(0.0 <= delay < 1.0 for delay in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_nonsense_bounds_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base"):
        backoff(base, cap)
