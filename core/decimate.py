"""MinMax decimation for plots: per bucket keep the samples with the lowest and the highest
value of every signal, so spikes and envelopes survive any zoom level. Plain numpy, no Django.

The one decimation of the project: monitoring series (time buckets of one channel) and
seismograph waveforms (sample buckets of four channels) both use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def minmax_indices(
    t: np.ndarray, signals: Sequence[np.ndarray], start: int, end: int, n_out: int
) -> np.ndarray:
    """Indices (ascending) of at most ``n_out`` points: each bucket's min and max of each
    signal in ``signals`` (all as long as ``t``).

    ``t`` must be sorted; ``[start, end)`` is split into ``n_out // (2 * len(signals))``
    equal buckets. Linear time: buckets are contiguous runs of ``t``, reduced with
    ``reduceat``.
    """
    if len(t) <= n_out:
        return np.arange(len(t))
    buckets = max(1, n_out // (2 * max(1, len(signals))))
    bucket = np.clip((t - start) * buckets // max(1, end - start), 0, buckets - 1)
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    segment = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(t))))
    keep = [np.empty(0, dtype=np.intp)]
    for y in signals:
        keep.append(_first_per_segment(y == np.minimum.reduceat(y, starts)[segment], segment))
        keep.append(_first_per_segment(y == np.maximum.reduceat(y, starts)[segment], segment))
    return np.unique(np.concatenate(keep))


def _first_per_segment(hit: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """The first index of each segment where ``hit`` is true."""
    found = np.flatnonzero(hit)
    owner = segment[found]
    return found[np.concatenate(([True], owner[1:] != owner[:-1]))]
