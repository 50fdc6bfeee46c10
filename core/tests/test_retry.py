"""The backoff ceiling doubles, the cap holds, and the jitter stays in its band."""

from __future__ import annotations

import pytest

from core.retry import backoff_s


@pytest.mark.parametrize("attempt", range(6))
def test_full_jitter_stays_under_the_doubling_ceiling(attempt):
    delays = [backoff_s(attempt, 0.5, maximum_s=10) for _ in range(200)]
    assert all(0 <= d <= min(10, 0.5 * 2**attempt) for d in delays)
    assert len(set(delays)) > 1  # jittered


def test_no_jitter_is_exactly_the_ceiling():
    assert [backoff_s(a, 0.2, jitter=0.0) for a in range(4)] == [0.2, 0.4, 0.8, 1.6]


def test_half_jitter_keeps_the_lower_half_of_the_ceiling():
    delays = [backoff_s(3, 1.0, jitter=0.5) for _ in range(200)]
    assert all(4.0 <= d <= 8.0 for d in delays)
