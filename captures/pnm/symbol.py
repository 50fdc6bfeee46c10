"""Downstream OFDM symbol capture (PNN1): time-domain I/Q samples of one symbol.

No sample file exists and PyPNM only has an untested little-endian stub; this follows the
big-endian layout every other PNN type uses and keeps the raw int16 I/Q (scale unconfirmed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from captures.pnm.common import mac_text
from captures.pnm.cursor import Cursor
from captures.pnm.header import PnmHeader


@dataclass(eq=False)
class SymbolCapture:
    header: PnmHeader
    channel_id: int
    mac_address: str
    sample_rate_hz: int
    fft_length: int
    trigger_group_id: int
    capture_transaction_id: int
    iq: np.ndarray  # (n, 2) int16 raw I and Q

    def as_dict(self, data: bool = True) -> dict[str, object]:
        result = {
            "header": self.header.as_dict(),
            "channel_id": self.channel_id,
            "mac_address": self.mac_address,
            "sample_rate_hz": self.sample_rate_hz,
            "fft_length": self.fft_length,
            "trigger_group_id": self.trigger_group_id,
            "capture_transaction_id": self.capture_transaction_id,
            "stats": {"samples": int(self.iq.shape[0])},
        }
        if data:
            result["i"] = self.iq[:, 0].tolist()
            result["q"] = self.iq[:, 1].tolist()
        return result


def parse_symbol_capture(header: PnmHeader, cursor: Cursor) -> SymbolCapture:
    head = cursor.fields(
        [
            ("channel_id", "B"),
            ("mac_address", "6s"),
            ("sample_rate_hz", "I"),
            ("fft_length", "I"),
            ("trigger_group_id", "H"),
            ("capture_transaction_id", "H"),
        ]
    )
    length_offset = cursor.pos
    length = cursor.fields([("data_length", "I")])["data_length"]
    count = cursor.sized_block(length, 4, "data_length", length_offset)
    iq = cursor.array(">i2", count * 2, "data").reshape(count, 2).astype(np.int16)
    return SymbolCapture(
        header,
        head["channel_id"],
        mac_text(head["mac_address"]),
        head["sample_rate_hz"],
        head["fft_length"],
        head["trigger_group_id"],
        head["capture_transaction_id"],
        iq,
    )
