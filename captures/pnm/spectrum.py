"""CM spectrum analysis (PNN9), and PyPNM's header-less SNMP amplitude concatenation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from captures.pnm.common import json_list, mac_text, nan_summary
from captures.pnm.cursor import Cursor
from captures.pnm.errors import PnmFormatError
from captures.pnm.header import PnmHeader


def _bin_frequencies(centres_hz: np.ndarray, span_hz: float, bins: int) -> np.ndarray:
    """Bins of each segment cover [centre - span/2, centre + span/2) in equal steps."""
    offsets = (np.arange(bins) - bins / 2) * (span_hz / bins)
    frequencies: np.ndarray = (centres_hz[:, None] + offsets[None, :]).ravel()
    return frequencies


@dataclass(eq=False)
class SpectrumAnalysis:
    header: PnmHeader
    channel_id: int
    mac_address: str
    first_segment_center_hz: int
    last_segment_center_hz: int
    segment_span_hz: int
    bins_per_segment: int
    equivalent_noise_bandwidth: int
    window_function: int
    amplitudes_db: np.ndarray  # (segments, bins) in dB (file stores 0.01 dB)

    @property
    def segments(self) -> int:
        return int(self.amplitudes_db.shape[0])

    def frequencies(self) -> np.ndarray:
        centres = self.first_segment_center_hz + np.arange(self.segments) * float(
            self.segment_span_hz
        )
        return _bin_frequencies(centres, self.segment_span_hz, self.bins_per_segment)

    def as_dict(self, data: bool = True) -> dict[str, object]:
        result = {
            "header": self.header.as_dict(),
            "channel_id": self.channel_id,
            "mac_address": self.mac_address,
            "first_segment_center_hz": self.first_segment_center_hz,
            "last_segment_center_hz": self.last_segment_center_hz,
            "segment_span_hz": self.segment_span_hz,
            "bins_per_segment": self.bins_per_segment,
            "equivalent_noise_bandwidth": self.equivalent_noise_bandwidth,
            "window_function": self.window_function,
            "segments": self.segments,
            "stats": {"amplitude_db": nan_summary(self.amplitudes_db)},
        }
        if data:
            result["frequency_hz"] = json_list(self.frequencies(), 1)
            result["amplitude_db"] = json_list(self.amplitudes_db.ravel(), 2)
        return result


def parse_spectrum_analysis(header: PnmHeader, cursor: Cursor) -> SpectrumAnalysis:
    start = cursor.pos
    head = cursor.fields(
        [
            ("channel_id", "B"),
            ("mac_address", "6s"),
            ("first_segment_center_hz", "I"),
            ("last_segment_center_hz", "I"),
            ("segment_span_hz", "I"),
            ("bins_per_segment", "H"),
            ("equivalent_noise_bandwidth", "H"),
            ("window_function", "H"),
        ]
    )
    bins = head["bins_per_segment"]
    if bins == 0:
        raise PnmFormatError("bins_per_segment", start + 19, "must be at least 1")
    length_offset = cursor.pos
    length = cursor.fields([("data_length", "I")])["data_length"]
    count = cursor.sized_block(length, 2 * bins, "data_length", length_offset) * bins
    amplitudes = cursor.array(">i2", count, "data").reshape(-1, bins) / 100.0
    return SpectrumAnalysis(
        header,
        head["channel_id"],
        mac_text(head["mac_address"]),
        head["first_segment_center_hz"],
        head["last_segment_center_hz"],
        head["segment_span_hz"],
        bins,
        head["equivalent_noise_bandwidth"],
        head["window_function"],
        amplitudes,
    )


@dataclass(frozen=True, slots=True, eq=False)
class SnmpSpectrumSegment:
    center_hz: int
    span_hz: int
    bin_spacing_hz: int
    resolution_bandwidth: int
    amplitudes_db: np.ndarray


def parse_snmp_spectrum(data: bytes) -> list[SnmpSpectrumSegment]:
    """PyPNM's SNMP spectrum file: repeated ``>5I`` segment header + int16 (0.01 dB) bins.

    Not a modem file (no PNN header), so ``parse`` does not dispatch to it.
    """
    cursor = Cursor(data)
    segments = []
    while cursor.remaining:
        head = cursor.fields(
            [
                ("center_hz", "I"),
                ("span_hz", "I"),
                ("num_bins", "I"),
                ("bin_spacing_hz", "I"),
                ("resolution_bandwidth", "I"),
            ]
        )
        amplitudes = cursor.array(">i2", head["num_bins"], "amplitudes") / 100.0
        segments.append(
            SnmpSpectrumSegment(
                head["center_hz"],
                head["span_hz"],
                head["bin_spacing_hz"],
                head["resolution_bandwidth"],
                amplitudes,
            )
        )
    return segments
