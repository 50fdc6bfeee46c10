"""Downstream OFDM per-subcarrier files: RxMER (PNN4), channel estimation (PNN2),
constellation display (PNN3)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from captures.pnm.common import (
    ComplexResponse,
    GridFile,
    SubcarrierGrid,
    check_spacing,
    json_list,
    mac_text,
    nan_summary,
    read_iq,
)
from captures.pnm.cursor import Cursor
from captures.pnm.header import PnmHeader

EXCLUDED = 0xFF  # CM-OSSI: subcarrier excluded or not measured
RXMER_PERCENTILES = (2, 10, 50, 90, 98)
SUBCARRIER_SPEC = [
    ("channel_id", "B"),
    ("mac_address", "6s"),
    ("zero_frequency_hz", "I"),
    ("first_active_index", "H"),
    ("spacing_khz", "B"),
]


def _read_grid_head(cursor: Cursor) -> tuple[dict[str, Any], int, int, int]:
    """Channel/MAC/grid fields; returns them with the spacing in Hz, the length and its offset."""
    start = cursor.pos
    head = cursor.fields(SUBCARRIER_SPEC)
    spacing_hz = check_spacing(head["spacing_khz"], start + 13)
    length_offset = cursor.pos
    length = cursor.fields([("data_length", "I")])["data_length"]
    return head, spacing_hz, length, length_offset


def _grid(head: dict[str, Any], spacing_hz: int, count: int) -> SubcarrierGrid:
    return SubcarrierGrid(head["zero_frequency_hz"], head["first_active_index"], spacing_hz, count)


@dataclass(eq=False)
class RxMer(GridFile):
    """RxMER per active subcarrier in dB; excluded subcarriers (0xFF) are NaN, never 63.5."""

    header: PnmHeader
    channel_id: int
    mac_address: str
    grid: SubcarrierGrid
    raw: np.ndarray  # uint8 quarter-dB codes as read

    @cached_property
    def values_db(self) -> np.ndarray:
        values = self.raw * 0.25
        values[self.raw == EXCLUDED] = np.nan
        return values

    @property
    def excluded_count(self) -> int:
        return int(np.count_nonzero(self.raw == EXCLUDED))

    def stats(self) -> dict[str, object]:
        """The figures users read: mean/min/max/std and percentiles over measured subcarriers."""
        measured = self.raw[self.raw != EXCLUDED] * 0.25
        figures: dict[str, object] = {
            "subcarriers": int(self.raw.size),
            "excluded": int(self.raw.size - measured.size),
        }
        figures.update(nan_summary(measured))
        figures.pop("peak_to_peak")
        points = np.percentile(measured, RXMER_PERCENTILES) if measured.size else None
        figures["percentiles"] = {
            f"p{p}": (None if points is None else float(points[i]))
            for i, p in enumerate(RXMER_PERCENTILES)
        }
        return figures

    def data_dict(self) -> dict[str, object]:
        return {"rxmer_db": json_list(self.values_db, 2)}


def parse_rxmer(header: PnmHeader, cursor: Cursor) -> RxMer:
    head, spacing_hz, length, length_offset = _read_grid_head(cursor)
    count = cursor.sized_block(length, 1, "data_length", length_offset)
    raw = cursor.array("u1", count, "data")
    return RxMer(
        header,
        head["channel_id"],
        mac_text(head["mac_address"]),
        _grid(head, spacing_hz, count),
        raw,
    )


@dataclass(eq=False)
class ChannelEstimation(ComplexResponse):
    """Complex channel response H per active subcarrier (I/Q s2.13)."""

    header: PnmHeader
    channel_id: int
    mac_address: str
    grid: SubcarrierGrid
    coefficients: np.ndarray  # complex128


def parse_channel_estimation(header: PnmHeader, cursor: Cursor) -> ChannelEstimation:
    head, spacing_hz, length, length_offset = _read_grid_head(cursor)
    coefficients = read_iq(cursor, length, length_offset, frac_bits=13)
    return ChannelEstimation(
        header,
        head["channel_id"],
        mac_text(head["mac_address"]),
        _grid(head, spacing_hz, coefficients.size),
        coefficients,
    )


@dataclass(eq=False)
class Constellation:
    """Soft-decision constellation points (I/Q s2.13) of one OFDM channel."""

    header: PnmHeader
    channel_id: int
    mac_address: str
    zero_frequency_hz: int
    modulation_order: int
    sample_symbols: int
    spacing_hz: int
    points: np.ndarray  # complex128

    def as_dict(self, data: bool = True) -> dict[str, object]:
        result = {
            "header": self.header.as_dict(),
            "channel_id": self.channel_id,
            "mac_address": self.mac_address,
            "zero_frequency_hz": self.zero_frequency_hz,
            "modulation_order": self.modulation_order,
            "sample_symbols": self.sample_symbols,
            "spacing_hz": self.spacing_hz,
            "stats": {"points": int(self.points.size)},
        }
        if data:
            result["real"] = json_list(self.points.real, 5)
            result["imag"] = json_list(self.points.imag, 5)
        return result


def parse_constellation(header: PnmHeader, cursor: Cursor) -> Constellation:
    start = cursor.pos
    head = cursor.fields(
        [
            ("channel_id", "B"),
            ("mac_address", "6s"),
            ("zero_frequency_hz", "I"),
            ("modulation_order", "H"),
            ("sample_symbols", "H"),
            ("spacing_khz", "B"),
        ]
    )
    spacing_hz = check_spacing(head["spacing_khz"], start + 15)
    length_offset = cursor.pos
    length = cursor.fields([("data_length", "I")])["data_length"]
    points = read_iq(cursor, length, length_offset, frac_bits=13)
    return Constellation(
        header,
        head["channel_id"],
        mac_text(head["mac_address"]),
        head["zero_frequency_hz"],
        head["modulation_order"],
        head["sample_symbols"],
        spacing_hz,
        points,
    )
