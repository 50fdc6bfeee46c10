"""One summary per modem for fleet campaigns, the rank of the worst, and the per-CMTS
distribution of a run's summary metric.

A summary answers the operator's question for its test with one ranking value (and the
direction in which it is worse) plus the figures behind it:

- RxMER: over every active subcarrier of every channel, the mean, the 2nd percentile
  (the ranking value: a few bad subcarriers drag it down where the mean hides them), the
  minimum and the count below a threshold;
- FEC summary: uncorrectable over total codewords, all profiles and channels together;
- US pre-equalisation coefficients: the main-tap ratio, main-tap energy over the energy
  of every other tap in dB, the lowest over the channels (a low ratio: echoes, micro-
  reflections, group delay the modem has to pre-correct).

Percentiles interpolate linearly between order statistics (numpy's default, the
"inclusive" method of ``statistics.quantiles``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from captures.analyses.base import csv_bytes, new_figure, number, to_png
from captures.analyses.fec import FecTotals
from captures.analyses.preeq import PreEqResult
from captures.pnm import FecSummary, PnmFile, RxMer, UsPreEqualizer
from captures.pnm.header import FileType
from captures.pnm.ofdm import EXCLUDED

# 64-QAM needs about 30 dB of MER with today's LDPC codes and OFDM profiles (4096-QAM about
# 41 dB): a subcarrier below 30 dB cannot carry even a low-order profile cleanly.
DEFAULT_MER_THRESHOLD_DB = 30.0
Worse = Literal["lower", "higher"]
Figures = dict[str, float | int | None]
Part = dict[str, Any]  # one file's share of a summary (``file_part``), JSON
# The test types whose files have a part (the pre-eq coefficients, not their last update).
PART_TESTS = frozenset({"DS_OFDM_RXMER_PER_SUBCAR", "DS_OFDM_FEC_SUMMARY", "US_PRE_EQUALIZER_COEF"})
Key = TypeVar("Key")


@dataclass(frozen=True)
class ModemSummary:
    test: str
    metric: str
    value: float | None
    worse: Worse
    figures: Figures


def summarise(
    files: Sequence[PnmFile], *, mer_threshold_db: float = DEFAULT_MER_THRESHOLD_DB
) -> ModemSummary | None:
    """The summary of one modem's files of one run; None when none of them has a kind."""
    parts = [part for part in map(file_part, files) if part is not None]
    return combine(parts, mer_threshold_db=mer_threshold_db)


def file_part(parsed: PnmFile) -> Part | None:
    """What one file adds to its modem's summary, small and exact, as plain JSON: staging
    keeps it with the file's transaction (the bytes are in memory then), so a modem's
    summary is combined from its parts as its operation ends, no file read again. None for
    a file that has no part in a summary.

    RxMER: the count of each quarter-dB code (a file's values are those codes, so the
    percentiles of several files combined are exact); FEC: the codeword totals; pre-eq: the
    channel's main-tap ratio.
    """
    if isinstance(parsed, RxMer):
        counts = np.bincount(parsed.raw[parsed.raw != EXCLUDED], minlength=EXCLUDED)
        (codes,) = np.nonzero(counts)
        return {"kind": "rxmer", "codes": codes.tolist(), "counts": counts[codes].tolist()}
    if isinstance(parsed, FecSummary):
        totals = [FecTotals.of(p.profile_id, p.records) for p in parsed.profiles]
        return {
            "kind": "fec",
            "codewords": sum(t.codewords for t in totals),
            "corrected": sum(t.corrected for t in totals),
            "uncorrectable": sum(t.uncorrectable for t in totals),
            "profiles": len(totals),
        }
    if isinstance(parsed, UsPreEqualizer) and parsed.header.file_type == FileType.US_PRE_EQUALIZER:
        return {
            "kind": "preeq",
            "channel_id": parsed.channel_id,
            "main_tap_ratio_db": main_tap_ratio_db(parsed),
        }
    return None


def combine(
    parts: Sequence[Part], *, mer_threshold_db: float = DEFAULT_MER_THRESHOLD_DB
) -> ModemSummary | None:
    """One modem's summary from the parts of its files (``file_part``): its RxMER if it has
    any, else its FEC summary, else its pre-eq coefficients; None when none of them."""
    for kind, build in (("rxmer", _rxmer), ("fec", _fec), ("preeq", _pre_eq)):
        of_kind = [part for part in parts if part["kind"] == kind]
        if of_kind:
            return build(of_kind, mer_threshold_db)
    return None


def _rxmer(parts: list[Part], threshold_db: float) -> ModemSummary:
    values = np.concatenate(
        [np.repeat(np.asarray(p["codes"], dtype=float) * 0.25, p["counts"]) for p in parts]
    )
    usable = values.size > 0
    figures: Figures = {
        "mean_db": number(values.mean(), 4) if usable else None,
        "p2_db": number(np.percentile(values, 2), 4) if usable else None,
        "min_db": number(values.min(), 4) if usable else None,
        "below_threshold": int((values < threshold_db).sum()),
        "threshold_db": threshold_db,
        "subcarriers": int(values.size),
        "channels": len(parts),
    }
    p2 = figures["p2_db"]
    return ModemSummary(
        "DS_OFDM_RXMER_PER_SUBCAR", "rxmer_p2_db", None if p2 is None else float(p2), "lower",
        figures,
    )  # fmt: skip


def _fec(parts: list[Part], _threshold_db: float) -> ModemSummary:
    codewords = sum(p["codewords"] for p in parts)
    uncorrectable = sum(p["uncorrectable"] for p in parts)
    ratio = uncorrectable / codewords if codewords else None
    figures: Figures = {
        "uncorrectable_ratio": ratio,
        "codewords": codewords,
        "corrected": sum(p["corrected"] for p in parts),
        "uncorrectable": uncorrectable,
        "profiles": sum(p["profiles"] for p in parts),
        "channels": len(parts),
    }
    return ModemSummary("DS_OFDM_FEC_SUMMARY", "fec_uncorrectable_ratio", ratio, "higher", figures)


def main_tap_ratio_db(parsed: UsPreEqualizer) -> float | None:
    """Main-tap energy over the energy of every other tap, in dB (None: no taps, or
    nothing but the main tap)."""
    result = PreEqResult(parsed)
    if result.taps.size == 0:
        return None
    energy = np.abs(result.taps) ** 2
    main = float(energy[result.main_tap])
    rest = float(energy.sum()) - main
    return number(10 * np.log10(main / rest), 4) if rest > 0 and main > 0 else None


def _pre_eq(parts: list[Part], _threshold_db: float) -> ModemSummary:
    known = [p["main_tap_ratio_db"] for p in parts if p["main_tap_ratio_db"] is not None]
    worst = min(known) if known else None
    figures: Figures = {
        "main_tap_ratio_db": worst,
        "channels": len(parts),
        **{f"channel_{p['channel_id']}_main_tap_ratio_db": p["main_tap_ratio_db"] for p in parts},
    }
    return ModemSummary("US_PRE_EQUALIZER_COEF", "preeq_main_tap_ratio_db", worst, "lower", figures)


def rank(rows: Sequence[tuple[Key, ModemSummary]], n: int) -> list[tuple[Key, ModemSummary]]:
    """The ``n`` worst rows first (each summary's own direction); rows without a value last;
    ties keep their input order."""

    def key(indexed: tuple[int, tuple[Key, ModemSummary]]) -> tuple[int, float, int]:
        index, (_, summary) = indexed
        if summary.value is None:
            return (1, 0.0, index)
        value = summary.value if summary.worse == "lower" else -summary.value
        return (0, value, index)

    return [row for _, row in sorted(enumerate(rows), key=key)[:n]]


def _edges(groups: Mapping[str, Sequence[float]], bins: int) -> np.ndarray:
    values = [v for group in groups.values() for v in group]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high == low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


def distribution_stats(
    groups: Mapping[str, Sequence[float]],
) -> dict[str, Figures]:
    """Per group: count, mean, 2nd percentile, min, max."""
    stats: dict[str, Figures] = {}
    for name, group in groups.items():
        values = np.asarray(group, dtype=float)
        empty = values.size == 0
        stats[name] = {
            "count": int(values.size),
            "mean": None if empty else number(values.mean(), 6),
            "p2": None if empty else number(np.percentile(values, 2), 6),
            "min": None if empty else number(values.min(), 6),
            "max": None if empty else number(values.max(), 6),
        }
    return stats


def distribution_csv(
    groups: Mapping[str, Sequence[float]], *, metric: str, bins: int = 20
) -> Iterator[bytes]:
    """One row per group and bin (bins shared by every group, over all values):
    ``cmts, metric, bin_low, bin_high, count``; the last bin includes its high edge."""
    edges = _edges(groups, bins)

    def rows() -> Iterator[list[object]]:
        yield ["cmts", "metric", "bin_low", "bin_high", "count"]
        for name, group in groups.items():
            counts, _ = np.histogram(np.asarray(group, dtype=float), bins=edges)
            for low, high, count in zip(edges[:-1], edges[1:], counts, strict=True):
                yield [name, metric, number(low, 6), number(high, 6), int(count)]

    return csv_bytes(rows())


UNITS = {
    "rxmer_p2_db": "RxMER 2nd percentile (dB)",
    "fec_uncorrectable_ratio": "uncorrectable codewords / codewords",
    "preeq_main_tap_ratio_db": "pre-eq main-tap ratio (dB)",
}


def distribution_png(
    groups: Mapping[str, Sequence[float]], *, metric: str, title: str, bins: int = 20
) -> bytes:
    """A histogram per CMTS, one row each, on shared bins and x axis."""
    edges = _edges(groups, bins)
    figure, axes = new_figure(max(1, len(groups)))
    figure.set_figheight(max(3.0, 1.2 * len(groups) + 1.5))
    for ax, (name, group) in zip(axes, groups.items(), strict=False):
        ax.hist(np.asarray(group, dtype=float), bins=edges.tolist(), color="tab:blue")
        ax.set_ylabel("modems")
        ax.set_title(f"{name}: {len(group)} modems", fontsize=9, loc="left")
        ax.set_xlim(edges[0], edges[-1])
    axes[-1].set_xlabel(UNITS.get(metric, metric))
    figure.suptitle(title)
    return to_png(figure, axes)
