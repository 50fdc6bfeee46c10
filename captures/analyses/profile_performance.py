"""OFDM profile performance: per profile, the MER each subcarrier's modulation needs
against the measured RxMER → margin, subcarriers below need, and capacity delta.

Required MER for b bits per symbol is the Shannon limit 10·log10(2^b - 1) dB, the figure
PyPNM uses (``Shannon.bits_to_snr`` in src/pypnm/lib/signal_processing/shan/shannon.py);
it is a lower bound, real receivers need a few dB more. The bits the measured MER would
support are floor(log2(1 + 10^(MER/10))) (PyPNM's ``snr_to_limit``), capped at 14 (16384-QAM,
the DOCSIS 3.1 maximum); below 2 bits (QPSK) a subcarrier supports none. The capacity
delta is supported minus loaded bits per symbol over the data subcarriers that have a
measurement; times the subcarrier spacing it is a raw rate (no cyclic prefix, FEC or MAC
overhead).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from captures.analyses.base import MHZ, cell, device_title, new_figure, number, to_png
from captures.analyses.bitloading import profile_loading
from captures.analyses.fec import FecTotals, profile_name
from captures.pnm import ModulationProfile
from captures.pnm.common import json_list

MAX_BITS = 14
MIN_BITS = 2
REQUIRED_MER_SOURCE = (
    "Shannon limit 10*log10(2^b - 1) dB, as PyPNM Shannon.bits_to_snr "
    "(src/pypnm/lib/signal_processing/shan/shannon.py)"
)


def required_mer_db(bits: np.ndarray) -> np.ndarray:
    """MER needed for ``bits`` per symbol; NaN where a subcarrier carries no data."""
    out = np.full(bits.shape, np.nan)
    data = bits > 0
    out[data] = 10 * np.log10(np.exp2(bits[data].astype(np.float64)) - 1)
    return out


def supported_bits(mer_db: np.ndarray) -> np.ndarray:
    """Whole bits per symbol the MER supports (NaN where not measured)."""
    with np.errstate(invalid="ignore"):
        bits = np.floor(np.log2(1 + np.power(10.0, mer_db / 10)))
    bits = np.clip(bits, 0, MAX_BITS)
    bits[bits < MIN_BITS] = 0
    return bits


@dataclass(eq=False)
class ChannelRxMer:
    """The mean RxMER of a channel over a capture group's RxMER captures."""

    channel_id: int
    frequency_hz: np.ndarray  # ascending, one per active subcarrier
    mean_db: np.ndarray
    captures: int

    def at(self, frequency_hz: np.ndarray) -> np.ndarray:
        """Mean RxMER at the given subcarrier frequencies (NaN where not measured)."""
        out = np.full(frequency_hz.shape, np.nan)
        if self.frequency_hz.size == 0:
            return out
        index = np.clip(
            np.searchsorted(self.frequency_hz, frequency_hz), 0, self.frequency_hz.size - 1
        )
        found = self.frequency_hz[index] == frequency_hz
        out[found] = self.mean_db[index[found]]
        return out


@dataclass(eq=False)
class ProfilePerformance:
    profile_id: int
    spacing_hz: int
    frequency_hz: np.ndarray
    bits: np.ndarray
    measured_db: np.ndarray
    fec: FecTotals | None

    @property
    def required_db(self) -> np.ndarray:
        return required_mer_db(self.bits)

    @property
    def margin_db(self) -> np.ndarray:
        return self.measured_db - self.required_db

    @property
    def supported(self) -> np.ndarray:
        return supported_bits(self.measured_db)

    def summary(self) -> dict[str, object]:
        data = self.bits > 0
        measured = data & np.isfinite(self.measured_db)
        margin = self.margin_db[measured]
        loaded = int(self.bits[measured].sum())
        supported = int(self.supported[measured].sum())
        return {
            "profile_id": self.profile_id,
            "subcarriers": int(self.bits.size),
            "data_subcarriers": int(data.sum()),
            "measured_data_subcarriers": int(measured.sum()),
            "below_need": int((margin < 0).sum()),
            "min_margin_db": number(margin.min(), 3) if margin.size else None,
            "mean_margin_db": number(margin.mean(), 3) if margin.size else None,
            "loaded_bits_per_symbol": loaded,
            "supported_bits_per_symbol": supported,
            "capacity_delta_bits_per_symbol": supported - loaded,
            "capacity_delta_bps": (supported - loaded) * self.spacing_hz,
            "fec": None if self.fec is None else self.fec.as_dict(),
        }


@dataclass(eq=False)
class ChannelPerformance:
    channel_id: int
    mac_address: str
    modulation_capture_time: int | None
    rxmer_captures: int
    profiles: list[ProfilePerformance]
    ncp_fec: FecTotals | None = None


def channel_performance(
    modulation: ModulationProfile, rxmer: ChannelRxMer, fec: dict[int, FecTotals]
) -> ChannelPerformance:
    """Every profile of ``modulation`` against the channel's mean RxMER and FEC totals."""
    profiles = []
    for profile in modulation.profiles:
        frequency, _, bits = profile_loading(modulation, profile)
        profiles.append(
            ProfilePerformance(
                profile.profile_id,
                modulation.spacing_hz,
                frequency,
                bits,
                rxmer.at(frequency),
                fec.get(profile.profile_id),
            )
        )
    return ChannelPerformance(
        modulation.channel_id,
        modulation.mac_address,
        modulation.header.capture_time,
        rxmer.captures,
        profiles,
        fec.get(255),
    )


@dataclass(eq=False)
class ProfilePerformanceResult:
    kind = "ofdm-profile-performance"
    operation_id: str
    channels: list[ChannelPerformance]
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "operation_id": self.operation_id,
            "analysis": self.kind,
            "required_mer_source": REQUIRED_MER_SOURCE,
            "skipped": self.skipped,
            "channels": [
                {
                    "channel_id": channel.channel_id,
                    "mac_address": channel.mac_address,
                    "modulation_profile_capture_time": channel.modulation_capture_time,
                    "rxmer_captures": channel.rxmer_captures,
                    "ncp_fec": None if channel.ncp_fec is None else channel.ncp_fec.as_dict(),
                    "profiles": [
                        {
                            **p.summary(),
                            "frequency_hz": p.frequency_hz.tolist(),
                            "bits": p.bits.tolist(),
                            "required_mer_db": json_list(p.required_db, 3),
                            "measured_mer_db": json_list(p.measured_db, 3),
                            "margin_db": json_list(p.margin_db, 3),
                            "supported_bits": json_list(p.supported, 0),
                        }
                        for p in channel.profiles
                    ],
                }
                for channel in self.channels
            ],
        }

    def csv_rows(self) -> Iterator[list[object]]:
        yield [
            "channel_id",
            "profile_id",
            "frequency_hz",
            "bits",
            "required_mer_db",
            "measured_mer_db",
            "margin_db",
            "supported_bits",
        ]
        for channel in self.channels:
            for p in channel.profiles:
                columns = zip(
                    p.frequency_hz.tolist(),
                    p.bits.tolist(),
                    p.required_db.tolist(),
                    p.measured_db.tolist(),
                    p.margin_db.tolist(),
                    p.supported.tolist(),
                    strict=True,
                )
                for f, b, need, have, margin, can in columns:
                    yield [
                        channel.channel_id,
                        p.profile_id,
                        f,
                        b,
                        cell(need, 3),
                        cell(have, 3),
                        cell(margin, 3),
                        cell(can, 0),
                    ]

    def png(self) -> bytes:
        """One panel per channel and profile: measured RxMER against the MER needed."""
        panels = [(c, p) for c in self.channels for p in c.profiles]
        figure, axes = new_figure(max(len(panels), 1))
        figure.set_size_inches(10.0, 2.8 * max(len(panels), 1) + 0.6)
        for ax, (channel, p) in zip(axes, panels, strict=False):
            freq = p.frequency_hz / MHZ
            ax.plot(freq, p.measured_db, linewidth=0.6, label="measured RxMER (mean)")
            ax.step(
                freq, p.required_db, where="mid", linewidth=0.9, color="red", label="MER needed"
            )
            below = np.isfinite(p.margin_db) & (p.margin_db < 0)
            if below.any():
                ax.plot(freq[below], p.measured_db[below], "k.", markersize=2, label="below need")
            s = p.summary()
            fec = s["fec"]
            fec_text = (
                ""
                if not isinstance(fec, dict)
                else f"; FEC {fec['codewords']} cw, {fec['uncorrectable']} uncorrectable"
            )
            ax.set_title(
                f"channel {channel.channel_id} {profile_name(p.profile_id)}: "
                f"{s['below_need']} of {s['measured_data_subcarriers']} below need, "
                f"min margin {s['min_margin_db']} dB, capacity delta "
                f"{s['capacity_delta_bits_per_symbol']} bits/symbol{fec_text}",
                fontsize=9,
            )
            ax.set_ylabel("MER (dB)")
            ax.set_xlabel("frequency (MHz)")
            ax.legend(loc="lower right", fontsize=7)
        first = self.channels[0] if self.channels else None
        figure.suptitle(
            device_title(
                f"OFDM profile performance, operation {self.operation_id}",
                None,
                None if first is None else first.mac_address,
                None if first is None else first.modulation_capture_time,
            )
            + (
                ""
                if first is None
                else f"\nRxMER mean over {first.rxmer_captures} captures; need = Shannon limit"
            )
        )
        return to_png(figure, axes)
