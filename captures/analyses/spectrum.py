"""Spectrum: dBmV over frequency per segment, from a PNN9 file or the SNMP amplitude walk.

Levels are the file's amplitudes (0.01 dBmV units) as they are; the mean level is the
arithmetic mean of the dBmV values. The file's ENBW is in hundredths of a bin and its
window code follows SpectrumAnalysisWindowFunction (DOCS-IF3-MIB).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from captures.analyses.base import MHZ, cell, device_title, new_figure, number, to_png
from captures.pnm import SnmpSpectrumSegment, SpectrumAnalysis
from captures.pnm.common import json_list

WINDOW_FUNCTIONS = {
    0: "other",
    1: "hann",
    2: "blackmanHarris",
    3: "rectangular",
    4: "hamming",
    5: "flatTop",
    6: "gaussian",
    7: "chebyshev",
}


@dataclass(eq=False)
class Segment:
    center_hz: int
    span_hz: int
    frequency_hz: np.ndarray
    level_dbmv: np.ndarray
    resolution_bandwidth: int | None = None

    def summary(self) -> dict[str, object]:
        peak = int(np.nanargmax(self.level_dbmv)) if np.isfinite(self.level_dbmv).any() else None
        return {
            "center_hz": self.center_hz,
            "span_hz": self.span_hz,
            "bins": int(self.level_dbmv.size),
            "resolution_bandwidth": self.resolution_bandwidth,
            **level_summary(self.frequency_hz, self.level_dbmv, peak),
        }


def level_summary(
    frequency_hz: np.ndarray, level_dbmv: np.ndarray, peak: int | None
) -> dict[str, float | None]:
    finite = level_dbmv[np.isfinite(level_dbmv)]
    return {
        "min_dbmv": number(finite.min()) if finite.size else None,
        "max_dbmv": number(finite.max()) if finite.size else None,
        "mean_dbmv": number(finite.mean()) if finite.size else None,
        "peak_frequency_hz": None if peak is None else number(frequency_hz[peak], 1),
    }


@dataclass(eq=False)
class SpectrumResult:
    kind = "spectrum"
    source: str  # "file" (PNN9) or "snmp" (AmplitudeData walk)
    channel_id: int | None
    mac_address: str | None
    capture_time: int | None
    equivalent_noise_bandwidth: int | None
    window_function: int | None
    segments: list[Segment]

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.segments:
            return np.zeros(0), np.zeros(0)
        return (
            np.concatenate([s.frequency_hz for s in self.segments]),
            np.concatenate([s.level_dbmv for s in self.segments]),
        )

    def summary(self) -> dict[str, float | None]:
        frequency, level = self._all()
        peak = int(np.nanargmax(level)) if np.isfinite(level).any() else None
        return level_summary(frequency, level, peak)

    def as_dict(self) -> dict[str, object]:
        window = self.window_function
        return {
            "analysis": self.kind,
            "source": self.source,
            "channel_id": self.channel_id,
            "mac_address": self.mac_address,
            "capture_time": self.capture_time,
            "unit": "dBmV",
            "equivalent_noise_bandwidth_hundredths_bin": self.equivalent_noise_bandwidth,
            "window_function": None
            if window is None
            else WINDOW_FUNCTIONS.get(window, str(window)),
            "summary": self.summary(),
            "segments": [
                {
                    **s.summary(),
                    "frequency_hz": json_list(s.frequency_hz, 1),
                    "level_dbmv": json_list(s.level_dbmv, 2),
                }
                for s in self.segments
            ],
        }

    def csv_rows(self) -> Iterator[list[object]]:
        yield ["segment", "frequency_hz", "level_dbmv"]
        for n, segment in enumerate(self.segments):
            for f, v in zip(
                segment.frequency_hz.tolist(), segment.level_dbmv.tolist(), strict=True
            ):
                yield [n, cell(f, 1), cell(v, 2)]

    def png(self) -> bytes:
        figure, (ax,) = new_figure(1)
        for n, segment in enumerate(self.segments):
            ax.plot(
                segment.frequency_hz / MHZ,
                segment.level_dbmv,
                linewidth=0.6,
                color=("tab:blue", "tab:cyan")[n % 2],
            )
        summary = self.summary()
        peak_hz, peak_dbmv = summary["peak_frequency_hz"], summary["max_dbmv"]
        if peak_hz is not None and peak_dbmv is not None:
            ax.plot(
                peak_hz / MHZ,
                peak_dbmv,
                "rv",
                label=f"peak {peak_dbmv:.2f} dBmV at {peak_hz / MHZ:.3f} MHz",
            )
            ax.legend(loc="upper right")
        window = self.window_function
        notes = [f"{len(self.segments)} segments"]
        if self.equivalent_noise_bandwidth is not None:
            notes.append(f"ENBW {self.equivalent_noise_bandwidth / 100:.2f} bins")
        if window is not None:
            notes.append(f"window {WINDOW_FUNCTIONS.get(window, window)}")
        title = device_title(
            f"spectrum ({self.source})", self.channel_id, self.mac_address, self.capture_time
        )
        ax.set_title(f"{title}\n{', '.join(notes)}")
        ax.set_xlabel("frequency (MHz)")
        ax.set_ylabel("level (dBmV)")
        return to_png(figure, [ax])


def analyse_spectrum(parsed: SpectrumAnalysis) -> SpectrumResult:
    """PNN9: segment i is centred at first + i·span, its bins spread over the span."""
    frequencies = parsed.frequencies().reshape(parsed.amplitudes_db.shape)
    segments = [
        Segment(
            int(parsed.first_segment_center_hz + i * parsed.segment_span_hz),
            parsed.segment_span_hz,
            frequencies[i],
            parsed.amplitudes_db[i],
        )
        for i in range(parsed.segments)
    ]
    return SpectrumResult(
        "file",
        parsed.channel_id,
        parsed.mac_address,
        parsed.header.capture_time,
        parsed.equivalent_noise_bandwidth,
        parsed.window_function,
        segments,
    )


def analyse_snmp_spectrum(
    segments: list[SnmpSpectrumSegment], capture_time: int | None = None
) -> SpectrumResult:
    """SNMP AmplitudeData walk: bins ``bin_spacing`` apart from centre - count/2 bins (the
    PNN9 convention); the resolution bandwidth is passed on as the modem reports it."""
    result = []
    for s in segments:
        count = s.amplitudes_db.size
        offsets = (np.arange(count) - count / 2) * s.bin_spacing_hz
        result.append(
            Segment(
                s.center_hz,
                s.span_hz,
                s.center_hz + offsets,
                s.amplitudes_db,
                s.resolution_bandwidth,
            )
        )
    return SpectrumResult("snmp", None, None, capture_time, None, None, result)
