"""FEC summary over time (PNN8): per profile, codewords / corrected / uncorrectable per
interval (1 s records in a 10-minute file, 60 s in a 24-hour one) and their totals.

The records count each interval on its own (the sample's counters rise and fall), so
totals are sums. The uncorrectable ratio is uncorrectable / total codewords; a profile that
counted no codewords has no ratio (null), not a zero one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from captures.analyses.base import device_title, new_figure, to_png
from captures.pnm import FecSummary
from captures.pnm.fec import NCP_PROFILE

SUMMARY_TYPES = {2: "10 minutes", 3: "24 hours"}


def profile_name(profile_id: int) -> str:
    return "NCP" if profile_id == NCP_PROFILE else f"profile {profile_id}"


@dataclass(frozen=True)
class FecTotals:
    """Totals of one profile over a set of records (one file or several)."""

    profile_id: int
    records: int
    codewords: int
    corrected: int
    uncorrectable: int
    first_timestamp: int | None
    last_timestamp: int | None

    @classmethod
    def of(cls, profile_id: int, records: np.ndarray) -> FecTotals:
        codewords, corrected, uncorrectable = records[:, 1:].sum(axis=0, dtype=np.uint64)
        stamps = records[:, 0]
        return cls(
            profile_id,
            int(records.shape[0]),
            int(codewords),
            int(corrected),
            int(uncorrectable),
            int(stamps.min()) if stamps.size else None,
            int(stamps.max()) if stamps.size else None,
        )

    def __add__(self, other: FecTotals) -> FecTotals:
        stamps = [t for t in (self.first_timestamp, other.first_timestamp) if t is not None]
        ends = [t for t in (self.last_timestamp, other.last_timestamp) if t is not None]
        return FecTotals(
            self.profile_id,
            self.records + other.records,
            self.codewords + other.codewords,
            self.corrected + other.corrected,
            self.uncorrectable + other.uncorrectable,
            min(stamps) if stamps else None,
            max(ends) if ends else None,
        )

    def as_dict(self) -> dict[str, object]:
        ratio = self.uncorrectable / self.codewords if self.codewords else None
        corrected = self.corrected / self.codewords if self.codewords else None
        return {
            "profile_id": self.profile_id,
            "profile": profile_name(self.profile_id),
            "records": self.records,
            "codewords": self.codewords,
            "corrected": self.corrected,
            "uncorrectable": self.uncorrectable,
            "uncorrectable_ratio": ratio,
            "corrected_ratio": corrected,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
        }


@dataclass(eq=False)
class FecResult:
    kind = "fec-summary"
    parsed: FecSummary

    def totals(self) -> list[FecTotals]:
        return [FecTotals.of(p.profile_id, p.records) for p in self.parsed.profiles]

    def as_dict(self) -> dict[str, object]:
        parsed = self.parsed
        profiles = []
        for totals, profile in zip(self.totals(), parsed.profiles, strict=True):
            records = profile.records
            profiles.append(
                {
                    **totals.as_dict(),
                    "timestamps": records[:, 0].tolist(),
                    "codewords_series": records[:, 1].tolist(),
                    "corrected_series": records[:, 2].tolist(),
                    "uncorrectable_series": records[:, 3].tolist(),
                }
            )
        return {
            "analysis": self.kind,
            "channel_id": parsed.channel_id,
            "mac_address": parsed.mac_address,
            "capture_time": parsed.capture_time,
            "summary_type": parsed.summary_type,
            "summary_period": SUMMARY_TYPES.get(parsed.summary_type),
            "interval_s": parsed.step_s,
            "profiles": profiles,
        }

    def csv_rows(self) -> Iterator[list[object]]:
        yield ["profile_id", "timestamp", "codewords", "corrected", "uncorrectable"]
        for profile in self.parsed.profiles:
            for row in profile.records.tolist():
                yield [profile.profile_id, *row]

    def png(self) -> bytes:
        """One panel per profile: codewords (left axis) and corrected / uncorrectable
        (right axis) per interval, seconds from the first record."""
        parsed = self.parsed
        count = max(len(parsed.profiles), 1)
        figure, axes = new_figure(count)
        figure.set_size_inches(10.0, 2.4 * count + 0.8)
        start = parsed.capture_time or 0
        for ax, profile, totals in zip(axes, parsed.profiles, self.totals(), strict=False):
            elapsed = profile.records[:, 0].astype(np.int64) - start
            ax.plot(
                elapsed, profile.records[:, 1], linewidth=0.7, color="tab:blue", label="codewords"
            )
            ax.set_ylabel("codewords / interval")
            errors = ax.twinx()
            errors.plot(
                elapsed, profile.records[:, 2], linewidth=0.7, color="tab:orange", label="corrected"
            )
            errors.plot(
                elapsed,
                profile.records[:, 3],
                linewidth=0.9,
                color="tab:red",
                label="uncorrectable",
            )
            errors.set_ylabel("errored codewords")
            ratio = totals.as_dict()["uncorrectable_ratio"]
            ratio_text = "n/a" if ratio is None else f"{ratio:.3g}"
            ax.set_title(
                f"{profile_name(profile.profile_id)}: {totals.codewords} codewords, "
                f"{totals.corrected} corrected, {totals.uncorrectable} uncorrectable "
                f"(ratio {ratio_text})",
                fontsize=9,
            )
            lines = ax.get_lines() + errors.get_lines()
            ax.legend(
                lines, [str(line.get_label()) for line in lines], loc="upper right", fontsize=7
            )
        axes[-1].set_xlabel(f"seconds since first record ({parsed.step_s or '?'} s intervals)")
        period = SUMMARY_TYPES.get(parsed.summary_type, f"type {parsed.summary_type}")
        figure.suptitle(
            device_title(
                f"FEC summary ({period})",
                parsed.channel_id,
                parsed.mac_address,
                parsed.capture_time,
            )
        )
        return to_png(figure, axes)


def analyse_fec_summary(parsed: FecSummary) -> FecResult:
    return FecResult(parsed)
