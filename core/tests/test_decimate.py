"""MinMax decimation keeps every bucket's extremes and never more than asked."""

from __future__ import annotations

import numpy as np
import pytest

from core.decimate import minmax_indices


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_out", [4, 100, 2000])
def test_each_bucket_keeps_its_min_and_max(seed, n_out):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(n_out + 1, 50_000))
    t = np.sort(rng.integers(0, 3_600_000, n))
    y = rng.normal(size=n)
    y[rng.choice(n, 5, replace=False)] = [50, -50, 80, -80, 99]  # spikes
    keep = minmax_indices(t, [y], 0, 3_600_000, n_out)

    assert len(keep) <= n_out
    assert np.all(np.diff(keep) > 0)  # ascending, so still in time order
    buckets = n_out // 2
    bucket = t * buckets // 3_600_000
    kept = set(keep.tolist())
    for b in np.unique(bucket):
        members = np.flatnonzero(bucket == b)
        assert y[members].min() in y[list(kept & set(members.tolist()))]
        assert y[members].max() in y[list(kept & set(members.tolist()))]
    assert {-80.0, 99.0} <= set(y[keep].tolist())  # the global extremes, at any n_out


def test_short_series_are_returned_whole():
    t = np.arange(10)
    assert minmax_indices(t, [t * 1.0], 0, 10, 2000).tolist() == list(range(10))


def test_several_signals_each_keep_their_extremes():
    rng = np.random.default_rng(3)
    n = 10_000
    first, second = rng.normal(size=n), rng.normal(size=n)
    first[1234], second[8765] = 50.0, -60.0
    keep = minmax_indices(np.arange(n), [first, second], 0, n, 200)
    assert len(keep) <= 200
    assert {1234, 8765} <= set(keep.tolist())
