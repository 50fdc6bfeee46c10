"""Per-subcarrier files of one OFDM channel: RxMER (PNN4) and channel estimation (PNN2)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from captures.analyses.base import MHZ, cell, device_title, new_figure, to_png
from captures.pnm import ChannelEstimation, RxMer
from captures.pnm.common import json_list


def _per_subcarrier(kind: str, parsed: RxMer | ChannelEstimation) -> dict[str, object]:
    """What both per-subcarrier analyses say first: the file, its grid and its figures."""
    return {
        "analysis": kind,
        "channel_id": parsed.channel_id,
        "mac_address": parsed.mac_address,
        "capture_time": parsed.header.capture_time,
        "grid": parsed.grid.as_dict(),
        "summary": parsed.stats(),
        "frequency_hz": parsed.grid.frequencies().tolist(),
    }


@dataclass(eq=False)
class RxMerResult:
    """RxMER in dB per active subcarrier; excluded subcarriers (0xFF) are missing."""

    kind = "rxmer"
    parsed: RxMer

    def as_dict(self) -> dict[str, object]:
        return {
            **_per_subcarrier(self.kind, self.parsed),
            "rxmer_db": json_list(self.parsed.values_db, 2),
        }

    def csv_rows(self) -> Iterator[list[object]]:
        yield ["frequency_hz", "rxmer_db"]
        values = self.parsed.values_db.tolist()
        for f, v in zip(self.parsed.grid.frequencies().tolist(), values, strict=True):
            yield [f, cell(v, 2)]

    def png(self) -> bytes:
        parsed = self.parsed
        figure, (ax,) = new_figure(1)
        ax.plot(parsed.grid.frequencies() / MHZ, parsed.values_db, linewidth=0.6)
        stats = parsed.stats()
        title = device_title(
            "RxMER", parsed.channel_id, parsed.mac_address, parsed.header.capture_time
        )
        if stats["mean"] is not None:
            title += (
                f"\nmean {stats['mean']:.2f} dB, min {stats['min']:.2f} dB, "
                f"{stats['excluded']} excluded of {stats['subcarriers']} subcarriers"
            )
        ax.set_title(title)
        ax.set_xlabel("frequency (MHz)")
        ax.set_ylabel("RxMER (dB)")
        return to_png(figure, [ax])


@dataclass(eq=False)
class ChannelEstimationResult:
    """|H| in dB and group delay in µs per active subcarrier."""

    kind = "channel-estimation"
    parsed: ChannelEstimation

    def as_dict(self) -> dict[str, object]:
        parsed = self.parsed
        return {
            **_per_subcarrier(self.kind, parsed),
            "magnitude_db": json_list(parsed.magnitude_db),
            "group_delay_us": json_list(parsed.group_delay_s * 1e6, 6),
        }

    def csv_rows(self) -> Iterator[list[object]]:
        yield ["frequency_hz", "magnitude_db", "group_delay_us"]
        parsed = self.parsed
        for f, m, d in zip(
            parsed.grid.frequencies().tolist(),
            parsed.magnitude_db.tolist(),
            (parsed.group_delay_s * 1e6).tolist(),
            strict=True,
        ):
            yield [f, cell(m), cell(d, 6)]

    def png(self) -> bytes:
        parsed = self.parsed
        figure, axes = new_figure(2)
        freq = parsed.grid.frequencies() / MHZ
        axes[0].plot(freq, parsed.magnitude_db, linewidth=0.6)
        axes[0].set_ylabel("|H| (dB)")
        axes[0].set_title(
            device_title(
                "channel estimation",
                parsed.channel_id,
                parsed.mac_address,
                parsed.header.capture_time,
            )
        )
        axes[1].plot(freq, parsed.group_delay_s * 1e6, linewidth=0.6)
        axes[1].set_ylabel("group delay (µs)")
        for ax in axes:
            ax.set_xlabel("frequency (MHz)")
        return to_png(figure, axes)


def analyse_rxmer(parsed: RxMer) -> RxMerResult:
    return RxMerResult(parsed)


def analyse_channel_estimation(parsed: ChannelEstimation) -> ChannelEstimationResult:
    return ChannelEstimationResult(parsed)
