"""Downstream OFDM FEC summary (PNN8): per-profile codeword counters over time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from captures.pnm.common import json_list, mac_text
from captures.pnm.cursor import Cursor
from captures.pnm.header import PnmHeader

NCP_PROFILE = 255
SUMMARY_STEP_S = {2: 1, 3: 60}  # 2 = 10-minute file (1 s records), 3 = 24-hour (60 s)


def _rate(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Ratio with NaN where no codewords were counted (no data is not a zero error rate)."""
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


@dataclass(eq=False)
class FecProfileSeries:
    """One profile's records: timestamp, total, corrected, uncorrectable codewords."""

    profile_id: int
    records: np.ndarray  # (n, 4) uint32

    @property
    def timestamps(self) -> np.ndarray:
        return self.records[:, 0]

    @property
    def codeword_error_rate(self) -> np.ndarray:
        """Uncorrectable / total per record."""
        return _rate(self.records[:, 3].astype(np.float64), self.records[:, 1])

    @property
    def corrected_rate(self) -> np.ndarray:
        return _rate(self.records[:, 2].astype(np.float64), self.records[:, 1])

    def summary(self) -> dict[str, object]:
        totals = self.records[:, 1:].sum(axis=0, dtype=np.uint64)
        total, corrected, uncorrectable = (int(v) for v in totals)
        return {
            "profile_id": self.profile_id,
            "ncp": self.profile_id == NCP_PROFILE,
            "records": int(self.records.shape[0]),
            "total_codewords": total,
            "corrected_codewords": corrected,
            "uncorrectable_codewords": uncorrectable,
            "codeword_error_rate": uncorrectable / total if total else None,
            "corrected_rate": corrected / total if total else None,
        }


@dataclass(eq=False)
class FecSummary:
    header: PnmHeader
    channel_id: int
    mac_address: str
    summary_type: int
    profiles: list[FecProfileSeries]

    @property
    def capture_time(self) -> int | None:
        """The file has no capture time in its header: use the first record's timestamp."""
        for profile in self.profiles:
            if profile.records.shape[0]:
                return int(profile.records[0, 0])
        return None

    @property
    def step_s(self) -> int | None:
        return SUMMARY_STEP_S.get(self.summary_type)

    def as_dict(self, data: bool = True) -> dict[str, object]:
        profiles = [p.summary() for p in self.profiles]
        result: dict[str, object] = {
            "header": self.header.as_dict(),
            "capture_time": self.capture_time,
            "channel_id": self.channel_id,
            "mac_address": self.mac_address,
            "summary_type": self.summary_type,
            "step_s": self.step_s,
            "profiles": profiles,
        }
        if data:
            for entry, profile in zip(profiles, self.profiles, strict=True):
                entry["timestamps"] = profile.timestamps.tolist()
                entry["codeword_error_rate_series"] = json_list(profile.codeword_error_rate, 9)
        return result


def parse_fec_summary(header: PnmHeader, cursor: Cursor) -> FecSummary:
    head = cursor.fields(
        [
            ("channel_id", "B"),
            ("mac_address", "6s"),
            ("summary_type", "B"),
            ("num_profiles", "B"),
        ]
    )
    profiles = []
    for _ in range(head["num_profiles"]):
        entry = cursor.fields([("profile_id", "B"), ("num_sets", "H")])
        records = cursor.array(">u4", entry["num_sets"] * 4, "codeword_sets")
        profiles.append(FecProfileSeries(entry["profile_id"], records.reshape(-1, 4)))
    return FecSummary(
        header, head["channel_id"], mac_text(head["mac_address"]), head["summary_type"], profiles
    )
