"""Analysis of an operation's captures (min-avg-max, heat map, group delay, OFDM profile
performance) and of one transaction's file (``captures.analyses``).

Captures are read one at a time (decompress → parse → fold into per-channel arrays), so
memory grows with channels x subcarriers (x captures for a heat map), never with the
stored files. JSON and CSV are produced as chunk iterators the API streams; PNGs are in
``captures.analysis_plots``. Nothing is cached: a finished analysis leaves no references.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zstandard
from django.db.models import QuerySet

from captures import storage
from captures.analyses import FileAnalysis, analyse_file, analyse_snmp_spectrum
from captures.analyses.fec import FecTotals
from captures.analyses.profile_performance import (
    ChannelRxMer,
    ProfilePerformanceResult,
    channel_performance,
)
from captures.models import Operation, Transaction
from captures.pnm import (
    ChannelEstimation,
    FecSummary,
    ModulationProfile,
    PnmFile,
    PnmFormatError,
    RxMer,
    parse,
    parse_snmp_spectrum,
)
from captures.pnm.common import json_list
from devices.links.pnm import PnmTest

READ_BATCH = 200
# PyPNM's name for the SNMP-only spectrum (AmplitudeData walk): no PNN header of its own.
SNMP_SPECTRUM_TEST_TYPE = PnmTest.SPECTRUM_ANALYZER_SNMP.value  # no header: typed by its record


class AnalysisType(enum.StrEnum):
    MIN_AVG_MAX = "min-avg-max"
    HEATMAP = "heatmap"
    GROUP_DELAY = "group-delay"
    OFDM_PROFILE_PERFORMANCE = "ofdm-profile-performance"


class AnalysisError(ValueError):
    """The operation holds nothing this analysis can use."""


@dataclass(frozen=True)
class Measure:
    """What an analysis plots per subcarrier, and how to read it from a parsed file."""

    name: str
    unit: str
    # Called only with the file type measure_for() chose this measure for.
    read: Callable[[Any], np.ndarray]


RXMER_DB = Measure("rxmer", "dB", lambda f: f.values_db)
MAGNITUDE_DB = Measure("magnitude", "dB", lambda f: f.magnitude_db)
GROUP_DELAY = Measure("group_delay", "s", lambda f: f.group_delay_s)


def measure_for(analysis: AnalysisType, parsed: PnmFile) -> Measure | None:
    """RxMER files give RxMER; channel estimation gives |H| (or group delay when asked)."""
    if isinstance(parsed, RxMer) and analysis is not AnalysisType.GROUP_DELAY:
        return RXMER_DB
    if isinstance(parsed, ChannelEstimation):
        return GROUP_DELAY if analysis is AnalysisType.GROUP_DELAY else MAGNITUDE_DB
    return None


class UnreadableFile(OSError):
    """The stored file exists but does not decompress (damaged on disk)."""


def read_transaction(record: Transaction) -> bytes:
    """The stored file of one transaction, decompressed."""
    reader = storage.iter_decompressed if record.is_compressed else storage.iter_stored
    try:
        return b"".join(reader(record.stored_path))
    except zstandard.ZstdError as exc:
        raise UnreadableFile(f"{record.stored_path} does not decompress: {exc}") from None


def load_transaction(record: Transaction) -> PnmFile:
    """The stored file of one transaction, decompressed and parsed."""
    return parse(read_transaction(record))


def analyse_transaction(record: Transaction) -> FileAnalysis:
    """The analysis of one transaction's file, chosen by its type (the SNMP spectrum by the
    transaction's test type, since that file has no header)."""
    data = read_transaction(record)
    if record.pnm_test_type == SNMP_SPECTRUM_TEST_TYPE:
        return analyse_snmp_spectrum(parse_snmp_spectrum(data), int(record.timestamp.timestamp()))
    return analyse_file(parse(data))


def operation_transactions(operation: Operation) -> QuerySet[Transaction]:
    return (
        Transaction.objects.filter(capture_group_id=operation.capture_group_id)
        .order_by("timestamp", "id")
        .only("id", "transaction_id", "timestamp", "channel_id", "stored_path", "is_compressed")
    )


@dataclass
class ChannelSeries:
    """One channel's result: min/avg/max per subcarrier, and the rows of a heat map."""

    channel_id: int
    measure: Measure
    frequency_hz: np.ndarray
    captures: int = 0
    minimum: np.ndarray | None = None
    maximum: np.ndarray | None = None
    total: np.ndarray | None = None
    counts: np.ndarray | None = None
    timestamps: list[int] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)

    def add(self, values: np.ndarray, timestamp: int, keep_row: bool) -> None:
        finite = np.isfinite(values)
        clean = np.where(finite, values, 0.0)
        if self.total is None:
            self.minimum = np.where(finite, values, np.inf)
            self.maximum = np.where(finite, values, -np.inf)
            self.total = clean.copy()
            self.counts = finite.astype(np.int32)
        else:
            # the first add set all four arrays together
            assert self.minimum is not None
            assert self.maximum is not None
            assert self.counts is not None
            np.fmin(self.minimum, np.where(finite, values, np.inf), out=self.minimum)
            np.fmax(self.maximum, np.where(finite, values, -np.inf), out=self.maximum)
            self.total += clean
            self.counts += finite
        self.captures += 1
        if keep_row:
            self.timestamps.append(timestamp)
            self.rows.append(values.astype(np.float32))

    def average(self) -> np.ndarray:
        assert self.counts is not None, "no capture added"
        assert self.total is not None
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.total / self.counts, np.nan)

    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """min and max with never-measured subcarriers as NaN (missing)."""
        assert self.counts is not None, "no capture added"
        assert self.minimum is not None
        assert self.maximum is not None
        seen = self.counts > 0
        return np.where(seen, self.minimum, np.nan), np.where(seen, self.maximum, np.nan)

    def matrix(self) -> np.ndarray:
        return np.vstack(self.rows) if self.rows else np.zeros((0, self.frequency_hz.size))


@dataclass
class AnalysisResult:
    operation_id: str
    analysis: AnalysisType
    channels: list[ChannelSeries]
    skipped: list[dict[str, str]]


def _parsed_files(
    operation: Operation, skipped: list[dict[str, str]]
) -> Iterator[tuple[Transaction, PnmFile]]:
    """The operation's files parsed one at a time; an unreadable one is noted in ``skipped``."""
    for record in operation_transactions(operation).iterator(chunk_size=READ_BATCH):
        try:
            parsed = load_transaction(record)
        except (PnmFormatError, OSError) as exc:
            skipped.append({"transaction_id": record.transaction_id, "reason": str(exc)})
            continue
        yield record, parsed


def analyse(operation: Operation, analysis: AnalysisType) -> AnalysisResult:
    """Fold every capture of ``operation`` into per-channel series, one file at a time."""
    channels: dict[int, ChannelSeries] = {}
    skipped: list[dict[str, str]] = []
    keep_rows = analysis is AnalysisType.HEATMAP
    for record, parsed in _parsed_files(operation, skipped):
        measure = measure_for(analysis, parsed)
        if measure is None or not isinstance(parsed, RxMer | ChannelEstimation):
            continue  # e.g. a FEC summary in an RxMER operation: not part of this analysis
        _fold(channels, parsed, measure, record, skipped, keep_rows)
        del parsed
    if not channels:
        raise AnalysisError(f"operation {operation.operation_id} has no captures for {analysis}")
    return AnalysisResult(
        operation.operation_id, analysis, [channels[k] for k in sorted(channels)], skipped
    )


def _fold(
    channels: dict[int, ChannelSeries],
    parsed: RxMer | ChannelEstimation,
    measure: Measure,
    record: Transaction,
    skipped: list[dict[str, str]],
    keep_rows: bool = False,
) -> None:
    """Add one capture to its channel's series (a changed subcarrier grid is skipped)."""
    frequencies = parsed.grid.frequencies()
    series = channels.get(parsed.channel_id)
    if series is None:
        series = channels[parsed.channel_id] = ChannelSeries(
            parsed.channel_id, measure, frequencies
        )
    elif not np.array_equal(series.frequency_hz, frequencies):
        skipped.append(
            {"transaction_id": record.transaction_id, "reason": "subcarrier grid changed"}
        )
        return
    series.add(measure.read(parsed), int(record.timestamp.timestamp()), keep_rows)


def analyse_profile_performance(operation: Operation) -> ProfilePerformanceResult:
    """Each channel's latest modulation profile against the mean of its RxMER captures and
    the sum of its FEC summaries, reading one file at a time."""
    rxmer: dict[int, ChannelSeries] = {}
    modulation: dict[int, ModulationProfile] = {}
    fec: dict[int, dict[int, FecTotals]] = {}
    skipped: list[dict[str, str]] = []
    for record, parsed in _parsed_files(operation, skipped):
        if isinstance(parsed, RxMer):
            _fold(rxmer, parsed, RXMER_DB, record, skipped)
        elif isinstance(parsed, ModulationProfile):
            modulation[parsed.channel_id] = parsed  # time order: the latest wins
        elif isinstance(parsed, FecSummary):
            totals = fec.setdefault(parsed.channel_id, {})
            for profile in parsed.profiles:
                added = FecTotals.of(profile.profile_id, profile.records)
                known = totals.get(profile.profile_id)
                totals[profile.profile_id] = added if known is None else known + added
        del parsed
    channels = [
        channel_performance(
            modulation[channel_id],
            ChannelRxMer(
                channel_id,
                rxmer[channel_id].frequency_hz,
                rxmer[channel_id].average(),
                rxmer[channel_id].captures,
            ),
            fec.get(channel_id, {}),
        )
        for channel_id in sorted(modulation)
        if channel_id in rxmer
    ]
    if not channels:
        raise AnalysisError(
            f"operation {operation.operation_id} has no modulation profile with RxMER "
            "captures of the same channel"
        )
    return ProfilePerformanceResult(operation.operation_id, channels, skipped)


def _digits(measure: Measure) -> int:
    return 12 if measure.unit == "s" else 3


def iter_json(result: AnalysisResult) -> Iterator[bytes]:
    """The result as JSON, one channel (and one heat-map row) at a time."""
    head = {"operation_id": result.operation_id, "analysis": str(result.analysis)}
    yield (json.dumps(head)[:-1] + ', "skipped": ' + json.dumps(result.skipped)).encode()
    yield b', "channels": ['
    for n, series in enumerate(result.channels):
        digits = _digits(series.measure)
        body = {
            "channel_id": series.channel_id,
            "measure": series.measure.name,
            "unit": series.measure.unit,
            "captures": series.captures,
            "frequency_hz": series.frequency_hz.tolist(),
        }
        prefix = (", " if n else "") + json.dumps(body)[:-1]
        if result.analysis is AnalysisType.HEATMAP:
            yield (prefix + ', "timestamps": ' + json.dumps(series.timestamps)).encode()
            yield b', "values": ['
            for i, row in enumerate(series.rows):
                yield ((", " if i else "") + json.dumps(json_list(row, digits))).encode()
            yield b"]}"
        else:
            low, high = series.extremes()
            parts = {"min": low, "avg": series.average(), "max": high}
            yield (
                prefix
                + "".join(f', "{k}": {json.dumps(json_list(v, digits))}' for k, v in parts.items())
                + "}"
            ).encode()
    yield b"]}"


def _csv_line(values: list[object]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue().encode()


def _cells(values: np.ndarray, digits: int) -> list[object]:
    return ["" if v is None else v for v in json_list(values, digits)]


def iter_csv(result: AnalysisResult) -> Iterator[bytes]:
    """Long-form CSV: min-avg-max/group-delay one row per subcarrier; heat map one row per
    capture (timestamp, then a column per subcarrier frequency)."""
    for series in result.channels:
        digits = _digits(series.measure)
        unit = series.measure.unit
        if result.analysis is AnalysisType.HEATMAP:
            yield _csv_line(["channel_id", "timestamp", *series.frequency_hz.tolist()])
            for timestamp, row in zip(series.timestamps, series.rows, strict=True):
                yield _csv_line([series.channel_id, timestamp, *_cells(row, digits)])
            continue
        yield _csv_line(
            ["channel_id", "frequency_hz", f"min_{unit}", f"avg_{unit}", f"max_{unit}", "captures"]
        )
        low, high = series.extremes()
        columns = [_cells(v, digits) for v in (low, series.average(), high)]
        assert series.counts is not None  # every series has had at least one add
        for i, frequency in enumerate(series.frequency_hz.tolist()):
            yield _csv_line(
                [series.channel_id, frequency, *(c[i] for c in columns), int(series.counts[i])]
            )
