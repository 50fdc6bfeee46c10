"""Fleet summaries, rank and per-CMTS distributions against plain Python arithmetic."""

from __future__ import annotations

import csv
import io
import math
import statistics

import numpy as np
import pytest

from captures.analyses.fleet import (
    ModemSummary,
    distribution_csv,
    distribution_png,
    distribution_stats,
    rank,
    summarise,
)
from captures.pnm import FecSummary, RxMer, parse
from captures.tests.test_analyses_files import check_png, pre_eq_file, raw
from simulators.pnm_files import rxmer_file

MAC = "02:00:5e:00:00:01"


def rxmer(channel_id: int, seed: int) -> RxMer:
    parsed = parse(rxmer_file(channel_id=channel_id, mac=MAC, capture_time=0, seed=seed))
    assert isinstance(parsed, RxMer)
    return parsed


def by_hand(parsed_files: list[RxMer]) -> list[float]:
    """Every active subcarrier's MER in dB, from the raw quarter-dB codes."""
    return [code / 4 for f in parsed_files for code in f.raw.tolist() if code != 0xFF]


def test_rxmer_over_two_channels_matches_plain_arithmetic():
    real = parse(raw("rxmer.bin"))
    assert isinstance(real, RxMer)
    files = [rxmer(193, seed=1), real]  # simulated, and a real capture
    values = by_hand(files)

    summary = summarise(files, mer_threshold_db=39.0)

    assert summary is not None
    assert (summary.metric, summary.worse) == ("rxmer_p2_db", "lower")
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    assert summary.value == pytest.approx(cuts[1], abs=1e-4)
    assert summary.figures["mean_db"] == pytest.approx(statistics.fmean(values), abs=1e-4)
    assert summary.figures["min_db"] == min(values)
    assert summary.figures["below_threshold"] == sum(v < 39.0 for v in values)
    assert summary.figures["subcarriers"] == len(values) > 3800
    assert summary.figures["channels"] == 2
    assert 0 < summary.figures["below_threshold"] < len(values)


def test_fec_summary_ratio_is_the_sum_of_its_records():
    parsed = parse(raw("fec_summary.bin"))
    assert isinstance(parsed, FecSummary)
    codewords = uncorrectable = 0
    for profile in parsed.profiles:
        for record in profile.records.tolist():
            codewords += int(record[1])
            uncorrectable += int(record[3])

    summary = summarise([parsed])

    assert summary is not None
    assert (summary.metric, summary.worse) == ("fec_uncorrectable_ratio", "higher")
    assert summary.figures["codewords"] == codewords
    assert summary.figures["uncorrectable"] == uncorrectable
    assert summary.value == uncorrectable / codewords


def test_pre_eq_main_tap_ratio_of_a_known_echo():
    """H = 1 + 0.05·e^(-j2π·7n/N): taps 1 and 0.05, so the ratio is 10·log10(1/0.0025) = 26 dB
    (the s2.13 rounding adds a little energy elsewhere)."""
    n = np.arange(1776)
    echo = parse(pre_eq_file(1 + 0.05 * np.exp(-2j * np.pi * 7 * n / 1776)))
    clean = parse(pre_eq_file(1 + 0.001 * np.exp(-2j * np.pi * 7 * n / 1776)))

    summary = summarise([clean, echo])

    assert summary is not None
    assert (summary.metric, summary.worse) == ("preeq_main_tap_ratio_db", "lower")
    assert summary.value == pytest.approx(10 * math.log10(1 / 0.05**2), abs=0.05)
    assert summary.figures["channels"] == 2


def test_files_without_a_summary_kind_give_none():
    assert summarise([parse(raw("histogram.bin"))]) is None
    assert summarise([]) is None


def summary(value: float | None, worse: str = "lower") -> ModemSummary:
    return ModemSummary("t", "m", value, worse, {})  # type: ignore[arg-type]


def test_rank_puts_the_worst_first_ties_in_order_and_unknowns_last():
    rows = [("a", summary(30.0)), ("b", summary(None)), ("c", summary(25.0)), ("d", summary(25.0))]

    assert [key for key, _ in rank(rows, 10)] == ["c", "d", "a", "b"]
    assert [key for key, _ in rank(rows, 2)] == ["c", "d"]
    higher = [("x", summary(0.1, "higher")), ("y", summary(0.3, "higher"))]
    assert [key for key, _ in rank(higher, 1)] == ["y"]


GROUPS = {"cmts-a": [30.0, 31.5, 40.0, 38.0], "cmts-b": [20.0, 39.5], "cmts-c": [35.0]}


def test_distribution_stats_by_hand():
    stats = distribution_stats(GROUPS)

    a = GROUPS["cmts-a"]
    assert stats["cmts-a"]["count"] == 4
    assert stats["cmts-a"]["mean"] == pytest.approx(statistics.fmean(a))
    assert stats["cmts-a"]["p2"] == pytest.approx(
        statistics.quantiles(a, n=100, method="inclusive")[1]
    )
    assert (stats["cmts-b"]["min"], stats["cmts-b"]["max"]) == (20.0, 39.5)


def test_distribution_csv_counts_every_value_once_on_shared_bins():
    text = b"".join(distribution_csv(GROUPS, metric="rxmer_p2_db", bins=4)).decode()
    rows = list(csv.DictReader(io.StringIO(text)))

    assert len(rows) == 3 * 4
    for name, values in GROUPS.items():
        mine = [row for row in rows if row["cmts"] == name]
        assert sum(int(row["count"]) for row in mine) == len(values)
        assert [float(row["bin_low"]) for row in mine] == [20.0, 25.0, 30.0, 35.0]
    # 40.0 is the top edge: in the last bin; 30.0 starts the third.
    a = {float(row["bin_low"]): int(row["count"]) for row in rows if row["cmts"] == "cmts-a"}
    assert a == {20.0: 0, 25.0: 0, 30.0: 2, 35.0: 2}


@pytest.mark.parametrize("groups", [1, 20])
def test_distribution_png_renders_one_to_twenty_cmtses(groups):
    data = {f"cmts-{i:02d}": [30.0 + i, 31.0 + i, 35.0] for i in range(groups)}

    png = distribution_png(data, metric="rxmer_p2_db", title="run x", bins=10)

    image = check_png(png)
    assert image.height > 250 * min(groups, 2)
