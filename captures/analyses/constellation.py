"""Constellation display (PNN3): soft decisions against the ideal QAM grid, and a MER estimate.

Normalisation: the file's I/Q are s2.13 soft decisions (value/8192) which CM-OSSI scales to
about unit average power at the slicer; they are used as they are, and the ideal grid is
scaled to unit average power (odd-integer levels divided by the root of their mean power).
MER is decision-directed: each point is decided to its nearest ideal point, and
MER = 10·log10(mean |ideal|² / mean |soft - ideal|²).

The header's modulation order is a DsOfdmModulationType code (DOCS-IF31-MIB: qpsk(3),
qam16(4), qam64(5), qam128(6), qam256(7) ... qam16384(13)), not the PNN10 bit-count codes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from captures.analyses.base import cell, device_title, new_figure, number, to_png
from captures.pnm import Constellation
from captures.pnm.common import json_list

MODULATION_BITS = {3: 2, 4: 4, 5: 6, 6: 7, 7: 8, 8: 9, 9: 10, 10: 11, 11: 12, 12: 13, 13: 14}


def ideal_levels(bits: int) -> tuple[np.ndarray, int]:
    """Ideal points on the odd-integer lattice (not yet normalised) and the lattice side.

    Even bit counts are square; odd ones are cross constellations: a square of side
    3·2^((b-3)/2) with a corner square of side 2^((b-5)/2) removed at each corner.
    """
    if bits % 2 == 0:
        side = 1 << (bits // 2)
        corner = 0
    else:
        side = 3 << ((bits - 3) // 2)
        corner = 1 << ((bits - 5) // 2)
    levels = np.arange(-(side - 1), side, 2)
    i, q = np.meshgrid(levels, levels)
    limit = side - 1 - 2 * corner
    keep = ~((np.abs(i) > limit) & (np.abs(q) > limit)) if corner else np.ones(i.shape, bool)
    return (i[keep] + 1j * q[keep]).astype(np.complex128), side


def ideal_grid(bits: int) -> np.ndarray:
    """The 2^bits ideal points at unit average power."""
    points, _ = ideal_levels(bits)
    return points / np.sqrt(np.mean(np.abs(points) ** 2))


def decide(soft: np.ndarray, bits: int) -> np.ndarray:
    """Nearest ideal point (unit-power grid) for every soft decision."""
    points, side = ideal_levels(bits)
    scale = np.sqrt(np.mean(np.abs(points) ** 2))
    lattice = soft * scale

    def odd(axis: np.ndarray) -> np.ndarray:
        return np.clip(2 * np.floor(axis / 2) + 1, -(side - 1), side - 1)

    decided = odd(lattice.real) + 1j * odd(lattice.imag)
    allowed = set(points.tolist())
    outside = np.array([d not in allowed for d in decided.tolist()], dtype=bool)
    if outside.any():  # a cross constellation's cut corner: nearest of the real points
        distances = np.abs(lattice[outside, None] - points[None, :])
        decided[outside] = points[np.argmin(distances, axis=1)]
    result: np.ndarray = decided / scale
    return result


@dataclass(eq=False)
class ConstellationResult:
    kind = "constellation"
    channel_id: int
    mac_address: str
    capture_time: int | None
    modulation_code: int
    bits: int | None
    sample_symbols: int
    soft: np.ndarray
    decided: np.ndarray | None

    @property
    def order(self) -> int | None:
        return None if self.bits is None else 1 << self.bits

    def mer_db(self) -> float | None:
        if self.decided is None or self.soft.size == 0:
            return None
        error = np.mean(np.abs(self.soft - self.decided) ** 2)
        ideal = np.mean(np.abs(self.decided) ** 2)
        return float(10 * np.log10(ideal / error)) if error > 0 else None

    def as_dict(self) -> dict[str, object]:
        grid = ideal_grid(self.bits) if self.bits else np.zeros(0, complex)
        return {
            "analysis": self.kind,
            "channel_id": self.channel_id,
            "mac_address": self.mac_address,
            "capture_time": self.capture_time,
            "modulation_code": self.modulation_code,
            "modulation_order": self.order,
            "bits_per_symbol": self.bits,
            "sample_symbols": self.sample_symbols,
            "points": int(self.soft.size),
            "normalisation": "s2.13 soft decisions unscaled; ideal grid at unit mean power",
            "mean_soft_power": number(np.mean(np.abs(self.soft) ** 2), 6)
            if self.soft.size
            else None,
            "mer_db": number(self.mer_db(), 3),
            "soft_i": json_list(self.soft.real, 5),
            "soft_q": json_list(self.soft.imag, 5),
            "ideal_i": json_list(grid.real, 6),
            "ideal_q": json_list(grid.imag, 6),
        }

    def csv_rows(self) -> Iterator[list[object]]:
        yield ["i", "q", "ideal_i", "ideal_q"]
        decided = self.decided if self.decided is not None else np.full(self.soft.size, np.nan)
        for s, d in zip(self.soft.tolist(), decided.tolist(), strict=True):
            yield [cell(s.real, 5), cell(s.imag, 5), cell(d.real, 6), cell(d.imag, 6)]

    def png(self) -> bytes:
        figure, (ax,) = new_figure(1)
        figure.set_size_inches(8.0, 8.0)
        ax.scatter(self.soft.real, self.soft.imag, s=1, alpha=0.4, label="soft decisions")
        if self.bits:
            grid = ideal_grid(self.bits)
            ax.scatter(grid.real, grid.imag, s=6, marker="+", color="red", label="ideal grid")
        ax.set_aspect("equal", adjustable="datalim")
        mer = self.mer_db()
        order = "unknown modulation" if self.order is None else f"{self.order}-QAM"
        mer_text = "MER n/a" if mer is None else f"MER {mer:.1f} dB"
        title = device_title("constellation", self.channel_id, self.mac_address, self.capture_time)
        ax.set_title(f"{title}\n{order}, {self.soft.size} points, {mer_text}")
        ax.set_xlabel("I (unit mean power)")
        ax.set_ylabel("Q (unit mean power)")
        ax.legend(loc="upper right", markerscale=4)
        return to_png(figure, [ax])


def analyse_constellation(parsed: Constellation) -> ConstellationResult:
    bits = MODULATION_BITS.get(parsed.modulation_order)
    decided = decide(parsed.points, bits) if bits else None
    return ConstellationResult(
        parsed.channel_id,
        parsed.mac_address,
        parsed.header.capture_time,
        parsed.modulation_order,
        bits,
        parsed.sample_symbols,
        parsed.points,
        decided,
    )
