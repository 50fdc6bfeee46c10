"""Pieces shared by several file types: MAC text, the OFDM subcarrier grid, fixed-point I/Q."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from captures.pnm.cursor import Cursor
from captures.pnm.errors import PnmFormatError

if TYPE_CHECKING:
    from captures.pnm.header import PnmHeader

OFDM_SPACINGS_KHZ = (25, 50)


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True, slots=True)
class SubcarrierGrid:
    """Active subcarriers i = 0..count-1 sit at f0 + (first_active_index + i) · spacing."""

    zero_frequency_hz: int
    first_active_index: int
    spacing_hz: int
    count: int

    def frequencies(self) -> np.ndarray:
        """Frequency of every active subcarrier in Hz (int64)."""
        index = np.arange(self.first_active_index, self.first_active_index + self.count)
        return self.zero_frequency_hz + index.astype(np.int64) * self.spacing_hz

    def as_dict(self) -> dict[str, int]:
        return {
            "zero_frequency_hz": self.zero_frequency_hz,
            "first_active_index": self.first_active_index,
            "spacing_hz": self.spacing_hz,
            "count": self.count,
        }


def check_spacing(spacing_khz: int, offset: int) -> int:
    """OFDM(A) subcarrier spacing is 25 or 50 kHz; anything else is a corrupt header."""
    if spacing_khz not in OFDM_SPACINGS_KHZ:
        raise PnmFormatError("subcarrier_spacing", offset, f"{spacing_khz} kHz is not 25 or 50")
    return spacing_khz * 1000


def read_iq(cursor: Cursor, length: int, length_offset: int, frac_bits: int) -> np.ndarray:
    """Declared-length block of (I int16, Q int16) pairs in fixed point → complex128."""
    count = cursor.sized_block(length, 4, "data_length", length_offset)
    pairs = cursor.array(">i2", count * 2, "data").reshape(count, 2)
    scale = 1.0 / (1 << frac_bits)
    return (pairs[:, 0] * scale) + 1j * (pairs[:, 1] * scale)


def group_delay_s(coefficients: np.ndarray, frequencies_hz: np.ndarray) -> np.ndarray:
    """Group delay τ(f) = -dφ/dω in seconds, from the unwrapped phase across subcarriers."""
    if coefficients.size < 2:
        return np.full(coefficients.size, np.nan)
    phase = np.unwrap(np.angle(coefficients))
    delay: np.ndarray = -np.gradient(phase, frequencies_hz.astype(np.float64)) / (2 * np.pi)
    return delay


def magnitude_db(coefficients: np.ndarray) -> np.ndarray:
    """|H| in dB; a zero coefficient is -inf in numpy terms, reported as NaN instead."""
    magnitude = np.abs(coefficients)
    with np.errstate(divide="ignore"):
        decibels: np.ndarray = 20 * np.log10(magnitude)
    decibels[~np.isfinite(decibels)] = np.nan
    return decibels


def json_list(values: np.ndarray, digits: int = 4) -> list[float | None]:
    """A float array as a JSON-safe list: NaN becomes None (missing), values rounded."""
    rounded = np.round(values.astype(np.float64), digits)
    return [None if v != v else v for v in rounded.tolist()]


def nan_summary(values: np.ndarray) -> dict[str, float | None]:
    """min/max/mean/std/peak-to-peak of the finite values (all None when there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return dict.fromkeys(("min", "max", "mean", "std", "peak_to_peak"))
    low, high = float(finite.min()), float(finite.max())
    return {
        "min": low,
        "max": high,
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "peak_to_peak": high - low,
    }


class GridFile:
    """Mixin for files with a subcarrier grid (``header``, ``channel_id``, ``mac_address``,
    ``grid`` fields): one ``as_dict`` shape, each type adding its ``stats`` and arrays."""

    header: PnmHeader
    channel_id: int
    mac_address: str
    grid: SubcarrierGrid

    def stats(self) -> dict[str, object]:
        raise NotImplementedError

    def data_dict(self) -> dict[str, object]:
        raise NotImplementedError

    def as_dict(self, data: bool = True) -> dict[str, object]:
        result = {
            "header": self.header.as_dict(),
            "channel_id": self.channel_id,
            "mac_address": self.mac_address,
            "grid": self.grid.as_dict(),
            "stats": self.stats(),
        }
        if data:
            result["frequency_hz"] = self.grid.frequencies().tolist()
            result.update(self.data_dict())
        return result


class ComplexResponse(GridFile):
    """Mixin for per-subcarrier complex coefficients (``coefficients``): |H|, group delay."""

    coefficients: np.ndarray

    @cached_property
    def magnitude_db(self) -> np.ndarray:
        return magnitude_db(self.coefficients)

    @cached_property
    def group_delay_s(self) -> np.ndarray:
        return group_delay_s(self.coefficients, self.grid.frequencies())

    def stats(self) -> dict[str, object]:
        return {
            "subcarriers": int(self.coefficients.size),
            "magnitude_db": nan_summary(self.magnitude_db),
            "group_delay_s": nan_summary(self.group_delay_s),
        }

    def data_dict(self) -> dict[str, object]:
        return {
            "magnitude_db": json_list(self.magnitude_db),
            "group_delay_s": json_list(self.group_delay_s, 12),
            "real": json_list(self.coefficients.real, 6),
            "imag": json_list(self.coefficients.imag, 6),
        }
