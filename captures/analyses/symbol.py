"""Symbol capture (PNN1): the raw time-domain I/Q of one symbol (scale unconfirmed, so the
values stay raw int16 counts) with their RMS and peak."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from captures.analyses.base import device_title, new_figure, number, to_png
from captures.pnm import SymbolCapture


@dataclass(eq=False)
class SymbolResult:
    kind = "symbol-capture"
    parsed: SymbolCapture

    def summary(self) -> dict[str, object]:
        iq = self.parsed.iq.astype(np.float64)
        power = iq[:, 0] ** 2 + iq[:, 1] ** 2
        return {
            "samples": int(iq.shape[0]),
            "rms": number(np.sqrt(power.mean())) if power.size else None,
            "peak": number(np.sqrt(power.max())) if power.size else None,
        }

    def as_dict(self) -> dict[str, object]:
        parsed = self.parsed
        return {
            "analysis": self.kind,
            "channel_id": parsed.channel_id,
            "mac_address": parsed.mac_address,
            "capture_time": parsed.header.capture_time,
            "sample_rate_hz": parsed.sample_rate_hz,
            "fft_length": parsed.fft_length,
            "unit": "raw int16",
            "summary": self.summary(),
            "i": parsed.iq[:, 0].tolist(),
            "q": parsed.iq[:, 1].tolist(),
        }

    def csv_rows(self) -> Iterator[list[object]]:
        yield ["sample", "i", "q"]
        for n, (i, q) in enumerate(self.parsed.iq.tolist()):
            yield [n, i, q]

    def png(self) -> bytes:
        parsed = self.parsed
        figure, (ax,) = new_figure(1)
        rate = parsed.sample_rate_hz or 1
        time_us = np.arange(parsed.iq.shape[0]) / rate * 1e6
        ax.plot(time_us, parsed.iq[:, 0], linewidth=0.5, label="I")
        ax.plot(time_us, parsed.iq[:, 1], linewidth=0.5, label="Q")
        ax.set_title(
            device_title(
                "symbol capture", parsed.channel_id, parsed.mac_address, parsed.header.capture_time
            )
        )
        ax.set_xlabel("time (µs)" if parsed.sample_rate_hz else "sample")
        ax.set_ylabel("amplitude (raw int16)")
        ax.legend(loc="upper right")
        return to_png(figure, [ax])


def analyse_symbol_capture(parsed: SymbolCapture) -> SymbolResult:
    return SymbolResult(parsed)
