"""Modulation-profile bit-loading (PNN10): per profile, the modulation and bits of every
subcarrier over frequency, and what one symbol carries.

Bits come from ``captures.pnm.modulation.bits_per_symbol`` (pilots, exclusions, PLC and
zero-bit subcarriers carry none). ``raw_rate_bps`` = bits per symbol x subcarrier spacing:
the symbol rate without the cyclic prefix, before FEC and MAC overhead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from captures.analyses.base import MHZ, device_title, new_figure, number, to_png
from captures.pnm import ModulationProfile, Profile
from captures.pnm.modulation import MODULATION_NAMES, bits_per_symbol


def profile_loading(
    parsed: ModulationProfile, profile: Profile
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequency (Hz), modulation code and bits of every subcarrier of one profile."""
    codes = profile.modulation_codes()
    return parsed.grid(profile).frequencies(), codes, bits_per_symbol(codes)


def loading_summary(bits: np.ndarray, spacing_hz: int) -> dict[str, object]:
    data = bits[bits > 0]
    total = int(bits.sum())
    return {
        "subcarriers": int(bits.size),
        "data_subcarriers": int(data.size),
        "bits_per_symbol": total,
        "mean_bits_per_data_subcarrier": number(data.mean()) if data.size else None,
        "raw_rate_bps": total * spacing_hz,
    }


@dataclass(eq=False)
class BitLoadingResult:
    kind = "bit-loading"
    parsed: ModulationProfile

    def as_dict(self) -> dict[str, object]:
        parsed = self.parsed
        profiles = []
        for profile in parsed.profiles:
            frequency, codes, bits = profile_loading(parsed, profile)
            counts = {
                MODULATION_NAMES.get(code, str(code)): int(n)
                for code, n in zip(*np.unique(codes, return_counts=True), strict=True)
            }
            profiles.append(
                {
                    "profile_id": profile.profile_id,
                    **loading_summary(bits, parsed.spacing_hz),
                    "modulation_counts": counts,
                    "frequency_hz": frequency.tolist(),
                    "bits": bits.tolist(),
                }
            )
        return {
            "analysis": self.kind,
            "channel_id": parsed.channel_id,
            "mac_address": parsed.mac_address,
            "capture_time": parsed.header.capture_time,
            "spacing_hz": parsed.spacing_hz,
            "profiles": profiles,
        }

    def csv_rows(self) -> Iterator[list[object]]:
        yield ["profile_id", "frequency_hz", "modulation", "bits"]
        for profile in self.parsed.profiles:
            frequency, codes, bits = profile_loading(self.parsed, profile)
            for f, code, b in zip(frequency.tolist(), codes.tolist(), bits.tolist(), strict=True):
                yield [profile.profile_id, f, MODULATION_NAMES.get(code, str(code)), b]

    def png(self) -> bytes:
        parsed = self.parsed
        figure, (ax,) = new_figure(1)
        for profile in parsed.profiles:
            frequency, _, bits = profile_loading(parsed, profile)
            total = int(bits.sum())
            ax.step(
                frequency / MHZ,
                bits,
                where="mid",
                linewidth=0.8,
                label=f"profile {profile.profile_id}: {total} bits/symbol",
            )
        ax.set_title(
            device_title(
                "modulation profile bit-loading",
                parsed.channel_id,
                parsed.mac_address,
                parsed.header.capture_time,
            )
        )
        ax.set_xlabel("frequency (MHz)")
        ax.set_ylabel("bits per subcarrier")
        ax.set_ylim(-0.5, 15)
        ax.legend(loc="lower right", fontsize=8)
        return to_png(figure, [ax])


def analyse_bit_loading(parsed: ModulationProfile) -> BitLoadingResult:
    return BitLoadingResult(parsed)
