"""MinMax decimation for plots: per time bucket keep the sample with the lowest and the
highest value, so spikes and envelopes survive any zoom level. Plain numpy, no Django."""

from __future__ import annotations

import numpy as np


def minmax_indices(t: np.ndarray, y: np.ndarray, start: int, end: int, n_out: int) -> np.ndarray:
    """Indices (ascending) of at most ``n_out`` points of ``y``: each bucket's min and max.

    ``t`` must be sorted; ``[start, end)`` is split into ``n_out // 2`` equal buckets.
    """
    if len(t) <= n_out:
        return np.arange(len(t))
    buckets = max(1, n_out // 2)
    span = max(1, end - start)
    bucket = np.clip((t - start) * buckets // span, 0, buckets - 1)
    order = np.lexsort((y, bucket))  # by bucket, then by value
    grouped = bucket[order]
    firsts = np.flatnonzero(np.concatenate(([True], grouped[1:] != grouped[:-1])))
    lasts = np.append(firsts[1:], len(order)) - 1
    return np.unique(np.concatenate((order[firsts], order[lasts])))
