"""Ingest: turn a batch (line protocol or JSON) into validated rows and store them.

Strict mode (the HTTP API) rejects the whole batch when any line is bad and writes nothing;
lenient mode (the stream listener, which cannot answer a line) writes the good lines and
reports the bad ones. Either way every problem names its line.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

import numpy as np
from django.conf import settings
from django.db import close_old_connections, connection, transaction

from core.ingester import Item
from monitoring import lineprotocol
from monitoring.models import MAX_CHANNELS, Instrument, RetentionState
from monitoring.storage import SampleBatch, to_us, write_batch

log = logging.getLogger(__name__)

MAX_REPORTED_PROBLEMS = 20
_PAD = [math.nan] * MAX_CHANNELS


@dataclass(frozen=True)
class Problem:
    """What is wrong with one line (line protocol) or one sample (JSON, 0-based index)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class IngestError(ValueError):
    """The batch was rejected; nothing of it was written."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems[:MAX_REPORTED_PROBLEMS]
        super().__init__(str(problems[0]))


@dataclass
class IngestResult:
    received: int = 0
    written: int = 0  # new rows (a line already stored is neither written nor rejected)
    rejected: int = 0
    problems: list[Problem] = field(default_factory=list)


@dataclass
class _Rows:
    """Accepted rows as columns, with where each came from (``label`` formats a position)."""

    label: str
    instrument: list[int] = field(default_factory=list)
    ts_us: list[int] = field(default_factory=list)
    values: list[list[float]] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)
    position: list[int] = field(default_factory=list)
    blocks: list[np.ndarray] = field(default_factory=list)  # values of add_block rows

    def where(self, i: int) -> str:
        return self.label.format(self.position[i])

    def add(self, position: int, instrument: tuple, ts_us: int, values: list) -> None:
        self.instrument.append(instrument[0])
        self.ts_us.append(ts_us)
        self.values.append(values + _PAD[len(values) :])
        self.channels.append(len(values))
        self.position.append(position)

    def add_block(self, positions: list[int], instruments: list[int], ts_us: list[int], values):
        """Many rows at once, after every ``add``; ``values`` is an (n, channels) float array."""
        count = values.shape[1]
        self.instrument += instruments
        self.ts_us += ts_us
        self.blocks.append(
            np.pad(values, ((0, 0), (0, MAX_CHANNELS - count)), constant_values=np.nan)
        )
        self.channels += [count] * len(positions)
        self.position += positions

    def batch(self) -> SampleBatch:
        return SampleBatch(
            np.array(self.instrument, dtype=np.int64),
            _stamps(self.ts_us),
            np.concatenate(
                [np.array(self.values, dtype=np.float64).reshape(-1, MAX_CHANNELS), *self.blocks]
            ),
            np.array(self.channels, dtype=np.int8),
        )


def _stamps(ts_us: list[int]) -> np.ndarray:
    """Stamps as int64; one beyond its range clamps to an end, which validation refuses."""
    try:
        return np.array(ts_us, dtype=np.int64)
    except OverflowError:
        low, high = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        return np.array([min(max(t, low), high) for t in ts_us], dtype=np.int64)


def ingest_line_protocol(
    text: str, *, precision: str = "ns", strict: bool = True, now: float | None = None
) -> IngestResult:
    """Store a line-protocol batch; the instrument is the ``instrument`` tag or the measurement.

    Lines of the usual shape (fields in channel order, plain numbers) are matched by one
    regular expression per channel layout and converted to floats by numpy in bulk; any other
    line takes the general parser, which also words the errors.
    """
    now = time.time() if now is None else now
    scale_ns = lineprotocol.PRECISION_NS[precision]
    now_us = int(now * 1e6)
    by_name = _instruments_by_name()
    layouts = {tuple(channels) for _, channels in by_name.values()}
    patterns = [(list(c), lineprotocol.layout_pattern(c)) for c in sorted(layouts)]
    usual: dict[int, tuple[list, list, list, list]] = {}  # per channel count, in columns
    rows, problems, received = _Rows("line {}"), [], 0
    for number, line in lineprotocol.iter_lines(text):
        received += 1
        for channels, pattern in patterns:
            match = pattern.fullmatch(line)
            if match is None:
                continue
            groups = match.groups()
            instrument = by_name.get(groups[1] or groups[0])
            if instrument is not None and instrument[1] == channels:
                block = usual.setdefault(len(channels), ([], [], [], []))
                block[0].append(number)
                block[1].append(instrument[0])
                stamp = groups[-1]
                block[2].append(now_us if stamp is None else int(stamp) * scale_ns // 1000)
                block[3].extend(groups[2:-1])
                break
        else:
            try:
                point = lineprotocol.parse_line(line)
                name = point.tags.get("instrument", point.measurement)
                instrument = _known(by_name, name)
                values = _ordered(instrument[1], point.fields)
                stamp = point.timestamp
                ts_us = now_us if stamp is None else stamp * scale_ns // 1000
            except ValueError as exc:
                problems.append(Problem(f"line {number}", str(exc)))
                continue
            rows.add(number, instrument, ts_us, values)
    for count, (positions, instruments, stamps, texts) in usual.items():
        matrix = np.array(texts, dtype=np.float64).reshape(-1, count)
        finite = np.isfinite(matrix).all(axis=1)  # "1e999" is a plain number, and infinite
        for i in np.flatnonzero(~finite):
            problems.append(Problem(f"line {positions[i]}", "a value is not finite"))
        keep = np.flatnonzero(finite).tolist() if not finite.all() else None
        if keep is not None:
            positions, instruments, stamps = (
                [column[i] for i in keep] for column in (positions, instruments, stamps)
            )
            matrix = matrix[keep]
        rows.add_block(positions, instruments, stamps, matrix)
    return _store(rows, problems, received, strict=strict, now=now)


def ingest_json(samples: list, *, strict: bool = True, now: float | None = None) -> IngestResult:
    """Store JSON samples: ``{"instrument": name|id, "ts": iso|epoch_s, "values": [..]|{..}}``."""
    now = time.time() if now is None else now
    by_name = _instruments_by_name()
    by_id = {instrument[0]: instrument for instrument in by_name.values()}
    rows, problems = _Rows("samples[{}]"), []
    for index, sample in enumerate(samples):
        where = f"samples[{index}]"
        try:
            if not isinstance(sample, dict):
                raise ValueError("each sample is an object")
            key = sample.get("instrument")
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise ValueError(f"instrument must be a name or an integer id, got {key!r}")
            instrument = by_id.get(key) if isinstance(key, int) else _known(by_name, key)
            if instrument is None:
                raise ValueError(f"unknown instrument {key!r}")
            values = _ordered(instrument[1], sample.get("values"))
            rows.add(index, instrument, _json_time(sample.get("ts")), values)
        except ValueError as exc:
            problems.append(Problem(where, str(exc)))
    return _store(rows, problems, len(samples), strict=strict, now=now)


# --- validation ------------------------------------------------------------------------------
def _instruments_by_name() -> dict[str, tuple[int, list[str]]]:
    return {
        name: (pk, channels)
        for pk, name, channels in Instrument.objects.filter(active=True).values_list(
            "id", "name", "channels"
        )
    }


def _known(by_name: dict, name: object) -> tuple[int, list[str]]:
    instrument = by_name.get(name) if isinstance(name, str) else None
    if instrument is None:
        raise ValueError(f"unknown instrument {name!r}")
    return instrument


def _ordered(channels: list[str], values: object) -> list[float]:
    """The values in channel order, all finite numbers, exactly one per channel."""
    if isinstance(values, dict) and len(values) == len(channels):  # the common case, fast
        ordered = [values.get(name) for name in channels]
        if all(type(v) is float and math.isfinite(v) for v in ordered):
            return cast("list[float]", ordered)  # every one a float, checked just above
    if isinstance(values, dict):
        if set(values) != set(channels):
            raise ValueError(
                f"wrong channels: expected {len(channels)} ({', '.join(channels)}), "
                f"got {len(values)} ({', '.join(map(str, values))})"
            )
        values = [values[name] for name in channels]
    elif not isinstance(values, list):
        raise ValueError("values must be a list or an object of channels")
    elif len(values) != len(channels):
        raise ValueError(
            f"wrong number of channels: expected {len(channels)} ({', '.join(channels)}), "
            f"got {len(values)}"
        )
    for name, value in zip(channels, values, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} is not a number: {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} is not finite: {value!r}")
    return [float(v) for v in values]


def _json_time(value: object) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return round(value * 1_000_000)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"ts is not ISO 8601: {value!r}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"ts needs a time zone: {value!r}")
        return round(parsed.timestamp() * 1_000_000)
    raise ValueError("ts must be an ISO 8601 string or epoch seconds")


def _batch_problems(
    rows: _Rows, batch: SampleBatch, now: float
) -> tuple[list[Problem], np.ndarray]:
    """Problems found across lines: times too far ahead or before 1970, one instrument twice
    at one time."""
    ahead = batch.ts_us > int((now + settings.MONITORING_MAX_FUTURE_S) * 1e6)
    early = batch.ts_us < 0
    problems = [
        Problem(rows.where(i), f"timestamp more than {settings.MONITORING_MAX_FUTURE_S} s ahead")
        for i in np.flatnonzero(ahead)[:MAX_REPORTED_PROBLEMS]
    ]
    problems += [
        Problem(rows.where(i), "timestamp before 1970")
        for i in np.flatnonzero(early)[:MAX_REPORTED_PROBLEMS]
    ]
    bad = ahead | early
    order = np.lexsort((batch.ts_us, batch.instrument))
    same = (batch.instrument[order][1:] == batch.instrument[order][:-1]) & (
        batch.ts_us[order][1:] == batch.ts_us[order][:-1]
    )
    for i in order[1:][same][:MAX_REPORTED_PROBLEMS]:
        problems.append(Problem(rows.where(i), "duplicate timestamp for this instrument"))
        bad[i] = True
    return problems, bad


def _store(rows: _Rows, problems: list[Problem], received: int, *, strict: bool, now: float):
    batch = rows.batch()
    unparsed = len(problems)
    found, bad = _batch_problems(rows, batch, now)
    problems = problems + found
    if problems and strict:
        raise IngestError(_in_order(problems))
    interval = settings.MONITORING_SNAPSHOT_INTERVAL_S
    with transaction.atomic():
        watermark = _locked_watermark_us()
        if watermark is not None:
            old = batch.ts_us < watermark
            if old.any():
                late = [
                    Problem(rows.where(i), "older than the retention watermark")
                    for i in np.flatnonzero(old)[:MAX_REPORTED_PROBLEMS]
                ]
                if strict:
                    raise IngestError(_in_order(problems + late))
                problems += late[:MAX_REPORTED_PROBLEMS]
                bad |= old
        written = write_batch(batch.take(~bad) if bad.any() else batch, interval)
    return IngestResult(received, written, unparsed + int(bad.sum()), _in_order(problems))


def _in_order(problems: list[Problem]) -> list[Problem]:
    def position(problem: Problem) -> int:
        return int("".join(c for c in problem.where if c.isdigit()) or 0)

    return sorted(problems, key=position)[:MAX_REPORTED_PROBLEMS]


def _locked_watermark_us() -> int | None:
    """The watermark, read so that a concurrent flush waits for this write (and vice versa)."""
    lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT watermark FROM monitoring_retentionstate WHERE id = %s{lock}",  # noqa: S608
            [RetentionState.SINGLETON_ID],
        )
        row = cursor.fetchone()
    if row is None or row[0] is None:
        return None
    return to_us(row[0])


def forward_item(item: Item) -> None:
    """The stream listener's ``forward`` (and ``replay``'s): lenient ingest of one batch.

    Lines without a timestamp get the time the batch was received, so a replayed dump
    stores exactly the rows the live stream stored.
    """
    close_old_connections()  # a long-running thread: honour CONN_MAX_AGE, drop dead ones
    text = item.read().decode("utf-8", errors="replace")
    result = ingest_line_protocol(text, strict=False, now=item.received_at or None)
    if result.problems:
        log.warning(
            "%s: %d of %d lines rejected, first: %s",
            item.key,
            result.rejected,
            result.received,
            "; ".join(map(str, result.problems[:3])),
        )
