"""MinMax decimation for plots: per time bucket keep the sample with the lowest and the
highest value, so spikes and envelopes survive any zoom level. Plain numpy, no Django."""

from __future__ import annotations

import numpy as np


def minmax_indices(t: np.ndarray, y: np.ndarray, start: int, end: int, n_out: int) -> np.ndarray:
    """Indices (ascending) of at most ``n_out`` points of ``y``: each bucket's min and max.

    ``t`` must be sorted; ``[start, end)`` is split into ``n_out // 2`` equal buckets. Linear
    time: buckets are contiguous runs of ``t``, reduced with ``reduceat``.
    """
    if len(t) <= n_out:
        return np.arange(len(t))
    buckets = max(1, n_out // 2)
    bucket = np.clip((t - start) * buckets // max(1, end - start), 0, buckets - 1)
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    segment = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(t))))
    low = _first_per_segment(y == np.minimum.reduceat(y, starts)[segment], segment)
    high = _first_per_segment(y == np.maximum.reduceat(y, starts)[segment], segment)
    return np.union1d(low, high)


def _first_per_segment(hit: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """The first index of each segment where ``hit`` is true."""
    found = np.flatnonzero(hit)
    owner = segment[found]
    return found[np.concatenate(([True], owner[1:] != owner[:-1]))]
