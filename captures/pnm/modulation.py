"""Downstream OFDM modulation profile (PNN10): per-profile run-length modulation maps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from captures.pnm.common import SubcarrierGrid, check_spacing, mac_text
from captures.pnm.cursor import Cursor
from captures.pnm.errors import PnmFormatError
from captures.pnm.header import PnmHeader

MAX_SUBCARRIERS = 8192  # 8K FFT: no OFDM channel has more, so expansions stay bounded
MODULATION_NAMES = {
    0: "zero-bit",
    1: "continuous-pilot",
    2: "qpsk",
    3: "8qam",
    4: "16qam",
    5: "32qam",
    6: "64qam",
    7: "128qam",
    8: "256qam",
    9: "512qam",
    10: "1024qam",
    11: "2048qam",
    12: "4096qam",
    13: "8192qam",
    14: "16384qam",
    16: "exclusion",
    20: "plc",
}


def bits_per_symbol(codes: np.ndarray) -> np.ndarray:
    """Codes 2..14 carry that many bits; pilots, exclusions, PLC and zero-bit carry none."""
    return np.where((codes >= 2) & (codes <= 14), codes, 0)


class Segment(NamedTuple):
    """A run of subcarriers. Schema 1 alternates ``modulation`` and ``skip_modulation``."""

    schema: int
    modulation: int
    skip_modulation: int | None
    subcarriers: int


@dataclass(eq=False)
class Profile:
    profile_id: int
    segments: list[Segment]

    def modulation_codes(self) -> np.ndarray:
        """One modulation-order code per subcarrier, in subcarrier order."""
        runs = []
        for seg in self.segments:
            run = np.full(seg.subcarriers, seg.modulation, dtype=np.uint8)
            if seg.skip_modulation is not None:
                run[1::2] = seg.skip_modulation
            runs.append(run)
        return np.concatenate(runs) if runs else np.zeros(0, dtype=np.uint8)

    def summary(self) -> dict[str, object]:
        bits = bits_per_symbol(self.modulation_codes())
        data = bits[bits > 0]
        return {
            "profile_id": self.profile_id,
            "subcarriers": int(bits.size),
            "data_subcarriers": int(data.size),
            "bits_per_symbol": int(bits.sum()),
            "mean_bits_per_data_subcarrier": float(data.mean()) if data.size else None,
            "segments": [
                {
                    "schema": s.schema,
                    "modulation": MODULATION_NAMES.get(s.modulation, str(s.modulation)),
                    "skip_modulation": None
                    if s.skip_modulation is None
                    else MODULATION_NAMES.get(s.skip_modulation, str(s.skip_modulation)),
                    "subcarriers": s.subcarriers,
                }
                for s in self.segments
            ],
        }


@dataclass(eq=False)
class ModulationProfile:
    header: PnmHeader
    channel_id: int
    mac_address: str
    zero_frequency_hz: int
    first_active_index: int
    spacing_hz: int
    profiles: list[Profile]

    def grid(self, profile: Profile) -> SubcarrierGrid:
        count = sum(s.subcarriers for s in profile.segments)
        return SubcarrierGrid(
            self.zero_frequency_hz, self.first_active_index, self.spacing_hz, count
        )

    def as_dict(self, data: bool = True) -> dict[str, object]:
        return {
            "header": self.header.as_dict(),
            "channel_id": self.channel_id,
            "mac_address": self.mac_address,
            "zero_frequency_hz": self.zero_frequency_hz,
            "first_active_index": self.first_active_index,
            "spacing_hz": self.spacing_hz,
            "profiles": [p.summary() for p in self.profiles],
        }


CHUNK_SIZES = {0: 4, 1: 5}  # schema 0: [0][mod][count(2)]; schema 1: [1][mod][skip][count(2)]


def _read_profile(cursor: Cursor) -> Profile:
    """One profile: id, byte length, then run-length chunks (read straight off the bytes,
    since a profile holds hundreds of 4-byte chunks)."""
    head = cursor.fields([("profile_id", "B"), ("profile_length", "H")])
    end = cursor.pos + head["profile_length"]
    if end > len(cursor.data):
        raise PnmFormatError("profile_length", cursor.pos - 2, "runs past the data block")
    pos = cursor.pos
    data = bytes(cursor.data[:end])  # bytes index faster than a memoryview
    segments: list[Segment] = []
    total = 0
    while pos < end:
        schema = data[pos]
        size = CHUNK_SIZES.get(schema)
        if size is None:
            raise PnmFormatError("chunk_schema", pos, f"unknown schema {schema}")
        if pos + size > end:
            raise PnmFormatError("chunk_schema", pos, "chunk runs past its profile")
        count = (data[pos + size - 2] << 8) | data[pos + size - 1]
        total += count
        if total > MAX_SUBCARRIERS:
            raise PnmFormatError(
                "subcarriers", pos + size - 2, f"profile exceeds {MAX_SUBCARRIERS}"
            )
        skip = data[pos + 2] if schema == 1 else None
        segments.append(Segment(schema, data[pos + 1], skip, count))
        pos += size
    cursor.pos = pos
    return Profile(head["profile_id"], segments)


def parse_modulation_profile(header: PnmHeader, cursor: Cursor) -> ModulationProfile:
    start = cursor.pos
    head = cursor.fields(
        [
            ("channel_id", "B"),
            ("mac_address", "6s"),
            ("num_profiles", "B"),
            ("zero_frequency_hz", "I"),
            ("first_active_index", "H"),
            ("spacing_khz", "B"),
        ]
    )
    spacing_hz = check_spacing(head["spacing_khz"], start + 14)
    length_offset = cursor.pos
    length = cursor.fields([("data_length", "I")])["data_length"]
    cursor.sized_block(length, 1, "data_length", length_offset)
    block = Cursor(memoryview(cursor.data)[: cursor.pos + length], cursor.pos)
    profiles = [_read_profile(block) for _ in range(head["num_profiles"])]
    return ModulationProfile(
        header,
        head["channel_id"],
        mac_text(head["mac_address"]),
        head["zero_frequency_hz"],
        head["first_active_index"],
        spacing_hz,
        profiles,
    )
