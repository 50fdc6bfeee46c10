"""Upstream OFDMA pre-equalisation (PNN6 coefficients, PNN7 last update).

The coefficients are per active subcarrier in the frequency domain. The time-domain taps
are their inverse FFT over the N active subcarriers (no padding), one tap every
1 / (N · spacing) seconds. Tap offsets are circular and signed, in [-N/2, N/2) around the
main (strongest) tap: negative offsets are pre-main, positive post-main.

Energy ratios (main, pre-main, post-main over total) are of these raw taps. A main tap
whose delay falls between two samples spreads into slowly decaying sidelobes, so the
micro-reflection estimate looks at the taps of the Hann-windowed coefficients instead
(sidelobes fall fast): the strongest local peak at least three taps from the main one. It
reports that tap's signed delay, its level relative to the main tap (dBc) and the one-way
distance to the reflection, v·|delay| / 2 with v = 0.87 c (RG-6/RG-11, the velocity factor
PyPNM's echo detector also uses); null when no such peak exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from captures.analyses.base import MHZ, cell, device_title, new_figure, number, to_png
from captures.pnm import UsPreEqualizer
from captures.pnm.common import json_list

SPEED_OF_LIGHT_M_S = 299_792_458.0
VELOCITY_FACTOR = 0.87
ECHO_GUARD_TAPS = 3
TAP_PLOT_US = 2.0  # micro-reflections lie within a few µs of the main tap
TAP_PLOT_FLOOR_DB = -80.0


def signed_offsets(main: int, n: int) -> np.ndarray:
    """Tap offsets from the main tap, circular and signed, in [-N/2, N/2)."""
    offsets: np.ndarray = (np.arange(n) - main + n // 2) % n - n // 2
    return offsets


def _db(ratio: float) -> float | None:
    return number(10 * np.log10(ratio), 3) if ratio > 0 else None


@dataclass(eq=False)
class PreEqResult:
    kind = "pre-equalizer"
    parsed: UsPreEqualizer

    @cached_property
    def taps(self) -> np.ndarray:
        return np.fft.ifft(self.parsed.coefficients)

    @cached_property
    def windowed_taps(self) -> np.ndarray:
        """Taps of the Hann-windowed coefficients, for the echo search."""
        coefficients = self.parsed.coefficients
        return np.fft.ifft(coefficients * np.hanning(coefficients.size))

    @property
    def tap_period_s(self) -> float:
        return 1.0 / (self.taps.size * self.parsed.grid.spacing_hz)

    @cached_property
    def main_tap(self) -> int:
        return int(np.argmax(np.abs(self.taps)))

    @cached_property
    def offsets(self) -> np.ndarray:
        return signed_offsets(self.main_tap, self.taps.size)

    def tap_figures(self) -> dict[str, object]:
        if self.taps.size == 0:
            return {}
        energy = np.abs(self.taps) ** 2
        total = float(energy.sum())
        main = float(energy[self.main_tap])
        pre = float(energy[self.offsets < 0].sum())
        post = float(energy[self.offsets > 0].sum())
        figures: dict[str, object] = {
            "taps": int(self.taps.size),
            "tap_period_us": number(self.tap_period_s * 1e6, 6),
            "main_tap_index": self.main_tap,
            "main_tap_energy_ratio_db": _db(main / total) if total else None,
            "pre_main_energy_ratio_db": _db(pre / total) if total else None,
            "post_main_energy_ratio_db": _db(post / total) if total else None,
            "micro_reflection": self.micro_reflection(),
        }
        return figures

    def micro_reflection(self) -> dict[str, object] | None:
        level = np.abs(self.windowed_taps)
        main = int(np.argmax(level))
        offsets = signed_offsets(main, level.size)
        peaks = (level > np.roll(level, 1)) & (level >= np.roll(level, -1))
        peaks &= np.abs(offsets) >= ECHO_GUARD_TAPS
        if not peaks.any() or level[main] == 0:
            return None
        index = int(np.flatnonzero(peaks)[np.argmax(level[peaks])])
        delay_s = float(offsets[index]) * self.tap_period_s
        return {
            "tap_index": index,
            "offset_taps": int(offsets[index]),
            "delay_us": number(delay_s * 1e6, 6),
            "level_dbc": _db(float(level[index] / level[main]) ** 2),
            "distance_m": number(VELOCITY_FACTOR * SPEED_OF_LIGHT_M_S * abs(delay_s) / 2, 2),
            "velocity_factor": VELOCITY_FACTOR,
            "window": "hann",
        }

    def as_dict(self) -> dict[str, object]:
        parsed = self.parsed
        magnitude = np.abs(self.taps)
        with np.errstate(divide="ignore"):
            taps_db = 20 * np.log10(magnitude / magnitude.max()) if magnitude.size else magnitude
        taps_db[~np.isfinite(taps_db)] = np.nan  # a zero tap is -inf dB: missing in JSON
        return {
            "analysis": self.kind,
            "test_type": parsed.header.test_type,
            "channel_id": parsed.channel_id,
            "mac_address": parsed.mac_address,
            "cmts_mac_address": parsed.cmts_mac_address,
            "capture_time": parsed.header.capture_time,
            "grid": parsed.grid.as_dict(),
            "summary": parsed.stats(),
            "taps": self.tap_figures(),
            "frequency_hz": parsed.grid.frequencies().tolist(),
            "magnitude_db": json_list(parsed.magnitude_db),
            "phase_deg": json_list(np.degrees(np.angle(parsed.coefficients)), 3),
            "group_delay_us": json_list(parsed.group_delay_s * 1e6, 6),
            "tap_offset": self.offsets.tolist(),
            "tap_level_db": json_list(taps_db, 3),
        }

    def csv_rows(self) -> Iterator[list[object]]:
        """Per subcarrier, then per tap (two tables, each with its header row)."""
        parsed = self.parsed
        yield ["frequency_hz", "magnitude_db", "phase_deg", "group_delay_us"]
        for f, m, p, d in zip(
            parsed.grid.frequencies().tolist(),
            parsed.magnitude_db.tolist(),
            np.degrees(np.angle(parsed.coefficients)).tolist(),
            (parsed.group_delay_s * 1e6).tolist(),
            strict=True,
        ):
            yield [f, cell(m), cell(p, 3), cell(d, 6)]
        yield ["tap_index", "offset_taps", "delay_us", "real", "imag"]
        for index, (offset, tap) in enumerate(
            zip(self.offsets.tolist(), self.taps.tolist(), strict=True)
        ):
            yield [
                index,
                offset,
                cell(offset * self.tap_period_s * 1e6, 6),
                cell(tap.real, 6),
                cell(tap.imag, 6),
            ]

    def png(self) -> bytes:
        parsed = self.parsed
        figure, axes = new_figure(3)
        freq = parsed.grid.frequencies() / MHZ
        axes[0].plot(freq, parsed.magnitude_db, linewidth=0.6, color="tab:blue")
        axes[0].set_ylabel("magnitude (dB)")
        phase = axes[0].twinx()
        phase.plot(
            freq, np.degrees(np.angle(parsed.coefficients)), linewidth=0.4, color="tab:orange"
        )
        phase.set_ylabel("phase (°)")
        axes[0].set_xlabel("frequency (MHz)")
        axes[0].set_title(
            device_title(
                parsed.header.test_type,
                parsed.channel_id,
                parsed.mac_address,
                parsed.header.capture_time,
            )
        )
        axes[1].plot(freq, parsed.group_delay_s * 1e6, linewidth=0.6)
        axes[1].set_ylabel("group delay (µs)")
        axes[1].set_xlabel("frequency (MHz)")
        figures = self.tap_figures()
        if figures:
            order = np.argsort(self.offsets)
            magnitude = np.abs(self.taps)
            with np.errstate(divide="ignore"):
                level = 20 * np.log10(magnitude / magnitude.max())
            delay_us = self.offsets * self.tap_period_s * 1e6
            axes[2].plot(delay_us[order], level[order], linewidth=0.5, alpha=0.5, label="taps")
            windowed = np.abs(self.windowed_taps)
            with np.errstate(divide="ignore"):
                windowed_db = 20 * np.log10(windowed / windowed.max())
            windowed_delay = signed_offsets(int(np.argmax(windowed)), windowed.size)
            ordered = np.argsort(windowed_delay)
            axes[2].plot(
                windowed_delay[ordered] * self.tap_period_s * 1e6,
                windowed_db[ordered],
                linewidth=0.7,
                label="Hann-windowed",
            )
            axes[2].legend(loc="upper right", fontsize=7)
            echo = figures["micro_reflection"]
            text = f"main tap {figures['main_tap_energy_ratio_db']} dB of total energy"
            if isinstance(echo, dict):
                axes[2].plot(echo["delay_us"], echo["level_dbc"], "rv")
                text += (
                    f"; strongest echo {echo['level_dbc']} dBc at {echo['delay_us']} µs "
                    f"(≈{echo['distance_m']} m at {VELOCITY_FACTOR} c)"
                )
            axes[2].set_title(text, fontsize=9)
            axes[2].set_ylim(TAP_PLOT_FLOOR_DB, 3)
            shown_us = max(
                TAP_PLOT_US, 1.5 * abs(echo["delay_us"]) if isinstance(echo, dict) else 0
            )
            axes[2].set_xlim(-shown_us, shown_us)
        axes[2].set_xlabel("delay from main tap (µs)")
        axes[2].set_ylabel("tap level (dB re main)")
        return to_png(figure, axes)


def analyse_pre_equalizer(parsed: UsPreEqualizer) -> PreEqResult:
    return PreEqResult(parsed)
