"""Waveforms for people: physical units, a time axis, peak-preserving decimation, a PNG.

Plain numpy/matplotlib on bytes; no Django. The raw body stays what the unit streamed
(int16 BE sample sets, channels interleaved), so decoding can be redone later.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from core.decimate import minmax_indices
from seismographs.protocol.records import CHANNELS, counts_to_physical

UNITS = {"Tran": "in/s", "Vert": "in/s", "Long": "in/s", "MicL": "psi"}


def counts(raw: bytes, channels: int = len(CHANNELS)) -> np.ndarray:
    """ADC counts, shape (samples, channels)."""
    return np.frombuffer(raw, dtype=">i2").reshape(-1, channels).astype(np.int16)


def keep_indices(n: int, max_points: int, signals: list[np.ndarray]) -> np.ndarray:
    """At most ``max_points`` sample indices: the first and the last sample, and every
    bucket's minimum and maximum of every signal (peaks are never decimated away)."""
    if n <= max_points:
        return np.arange(n)
    inner = minmax_indices(np.arange(n), signals, 0, n, max_points - 2)
    return np.union1d(inner, [0, n - 1])


def waveform_json(
    raw: bytes,
    sample_rate: int,
    pre_trigger_s: float,
    geo_range: float,
    max_points: int,
) -> dict[str, Any]:
    """The ``sfm.plot.v1``-like shape: per channel in physical units on a shared time axis
    (seconds from the trigger), decimated to ``max_points`` keeping min/max per bucket."""
    physical = counts_to_physical(counts(raw), geo_range)
    n = len(next(iter(physical.values())))
    keep = keep_indices(n, max_points, list(physical.values()))
    time_s = keep / sample_rate - pre_trigger_s
    channels = []
    for name, values in physical.items():
        peak_at = int(np.argmax(np.abs(values))) if n else 0
        channels.append(
            {
                "name": name,
                "units": UNITS[name],
                "peak": round(float(abs(values[peak_at])), 6) if n else 0.0,
                "peak_time_s": round(peak_at / sample_rate - pre_trigger_s, 6),
                "data": np.round(values[keep], 6).tolist(),
            }
        )
    return {
        "format": "sfm.plot.v1",
        "sample_rate": sample_rate,
        "pre_trigger_s": pre_trigger_s,
        "start_s": -pre_trigger_s,
        "end_s": round((n - 1) / sample_rate - pre_trigger_s, 6) if n else -pre_trigger_s,
        "npts_raw": n,
        "npts_display": len(keep),
        "time_s": np.round(time_s, 6).tolist(),
        "channels": channels,
    }


def waveform_png(
    raw: bytes, sample_rate: int, pre_trigger_s: float, geo_range: float, title: str
) -> bytes:
    """Four stacked channel plots as a PNG (matplotlib's Agg backend, no display)."""
    from matplotlib.figure import Figure

    plot = waveform_json(raw, sample_rate, pre_trigger_s, geo_range, max_points=4000)
    figure = Figure(figsize=(9, 7), dpi=90)
    axes = figure.subplots(len(plot["channels"]), 1, sharex=True)
    for ax, channel in zip(axes, plot["channels"], strict=True):
        ax.plot(plot["time_s"], channel["data"], linewidth=0.6)
        ax.set_ylabel(f"{channel['name']} ({channel['units']})")
        ax.axvline(0.0, color="grey", linewidth=0.5)
    axes[-1].set_xlabel("time from trigger (s)")
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
