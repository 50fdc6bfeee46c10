"""Upstream OFDMA pre-equalizer coefficients (PNN6) and their last update (PNN7)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from captures.pnm.common import ComplexResponse, SubcarrierGrid, check_spacing, mac_text, read_iq
from captures.pnm.cursor import Cursor
from captures.pnm.header import FileType, PnmHeader

# PyPNM 1.6.4 decodes PNN6 as s2.13 and PNN7 as s1.14 (1.0.11 used s1.14 for both).
FRACTION_BITS = {FileType.US_PRE_EQUALIZER: 13, FileType.US_PRE_EQUALIZER_LAST: 14}


@dataclass(eq=False)
class UsPreEqualizer(ComplexResponse):
    header: PnmHeader
    channel_id: int
    mac_address: str
    cmts_mac_address: str
    grid: SubcarrierGrid
    coefficients: np.ndarray  # complex128

    def stats(self) -> dict[str, object]:
        return {**super().stats(), "fraction_bits": FRACTION_BITS[self.header.file_type]}

    def as_dict(self, data: bool = True) -> dict[str, object]:
        return {**super().as_dict(data), "cmts_mac_address": self.cmts_mac_address}


def parse_us_pre_equalizer(header: PnmHeader, cursor: Cursor) -> UsPreEqualizer:
    start = cursor.pos
    head = cursor.fields(
        [
            ("channel_id", "B"),
            ("mac_address", "6s"),
            ("cmts_mac_address", "6s"),
            ("zero_frequency_hz", "I"),
            ("first_active_index", "H"),
            ("spacing_khz", "B"),
        ]
    )
    spacing_hz = check_spacing(head["spacing_khz"], start + 19)
    length_offset = cursor.pos
    length = cursor.fields([("data_length", "I")])["data_length"]
    coefficients = read_iq(cursor, length, length_offset, FRACTION_BITS[header.file_type])
    grid = SubcarrierGrid(
        head["zero_frequency_hz"], head["first_active_index"], spacing_hz, coefficients.size
    )
    return UsPreEqualizer(
        header,
        head["channel_id"],
        mac_text(head["mac_address"]),
        mac_text(head["cmts_mac_address"]),
        grid,
        coefficients,
    )
