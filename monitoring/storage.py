"""Writing validated sample batches: raw rows plus the snapshot rows of their intervals.

PostgreSQL gets one binary ``COPY`` per batch, the buffer built by numpy in one pass (no
per-row Python objects). A batch that repeats rows already stored (a retried upload)
falls back to a staging table and ``INSERT … ON CONFLICT DO NOTHING``, so a retry never
duplicates a row nor double-counts a snapshot. SQLite (the embedded demo) uses plain
``executemany``. Callers own the transaction.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache

import numpy as np
from django.db import connection, transaction
from psycopg.errors import UniqueViolation

from monitoring import partitions
from monitoring.models import MAX_CHANNELS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_DAY = 86_400_000_000
# PostgreSQL's binary timestamps count microseconds from 2000-01-01.
PG_EPOCH_OFFSET_US = 946_684_800_000_000
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
_COLUMNS = ["c0", "c1", "c2", "c3"]
_SNAPSHOT_COLUMNS = [
    "instrument_id", "bucket", "ts", *_COLUMNS, "n",
    *(f"min{i}" for i in range(MAX_CHANNELS)), *(f"max{i}" for i in range(MAX_CHANNELS)),
]  # fmt: skip
_NOT_NULL = {"instrument_id", "bucket", "ts", "c0", "n", "min0", "max0"}


@dataclass(frozen=True)
class SampleBatch:
    """Validated samples as columns; ``values`` holds NaN in channels an instrument lacks."""

    instrument: np.ndarray  # int64
    ts_us: np.ndarray  # int64, microseconds since the Unix epoch
    values: np.ndarray  # float64, shape (n, MAX_CHANNELS)
    channels: np.ndarray  # int8, channels used by each row's instrument

    def __len__(self) -> int:
        return len(self.ts_us)

    def take(self, index: np.ndarray) -> SampleBatch:
        return SampleBatch(
            self.instrument[index], self.ts_us[index], self.values[index], self.channels[index]
        )

    def days(self) -> set[date]:
        days = np.unique(self.ts_us // US_PER_DAY)
        return {to_datetime(int(d) * US_PER_DAY).date() for d in days}


def to_datetime(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def write_batch(batch: SampleBatch, interval_s: int) -> int:
    """Store ``batch``; returns how many rows were new. Must run inside a transaction."""
    if not len(batch):
        return 0
    if connection.vendor == "postgresql":
        inserted = _write_postgresql(batch)
    else:
        inserted = _write_sqlite(batch)
    _upsert_snapshots(inserted, interval_s)
    return len(inserted)


# --- PostgreSQL ------------------------------------------------------------------------------
def _write_postgresql(batch: SampleBatch) -> SampleBatch:
    with connection.cursor() as cursor:
        partitions.ensure_partitions(cursor, batch.days())
        try:
            with transaction.atomic():
                _copy(cursor, partitions.PARENT, batch)
            return batch
        except UniqueViolation:  # raised by psycopg's COPY, not wrapped by Django
            return _insert_new_only(cursor, batch)


def _copy(cursor, table: str, batch: SampleBatch) -> None:
    """One binary COPY per channel count (columns an instrument lacks stay NULL)."""
    counts = np.unique(batch.channels)
    for count in counts:
        rows = batch if len(counts) == 1 else batch.take(batch.channels == count)
        columns = ["instrument_id", "ts", *_COLUMNS[:count]]
        arrays = [rows.instrument, rows.ts_us - PG_EPOCH_OFFSET_US]
        copy_columns(cursor, table, columns, arrays + [rows.values[:, i] for i in range(count)])


def copy_columns(cursor, table: str, columns: list[str], arrays: list[np.ndarray]) -> None:
    """Binary COPY of 8-byte columns: int64 arrays load as bigint (or timestamptz, given as
    PostgreSQL microseconds), float64 arrays as double precision. No NULLs."""
    spec = [("fields", ">i2")]
    for i, array in enumerate(arrays):
        spec += [(f"l{i}", ">i4"), (f"v{i}", ">i8" if array.dtype.kind in "iu" else ">f8")]
    rows = np.empty(len(arrays[0]), dtype=np.dtype(spec))
    rows["fields"] = len(arrays)
    for i, array in enumerate(arrays):
        rows[f"l{i}"] = 8
        rows[f"v{i}"] = array
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(_COPY_HEADER + rows.tobytes() + _COPY_TRAILER)


def _insert_new_only(cursor, batch: SampleBatch) -> SampleBatch:
    """The retry path: stage the batch, insert what is not stored yet, say which rows."""
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS monitoring_sample_stage "
        "(LIKE monitoring_sample INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    cursor.execute("TRUNCATE monitoring_sample_stage")
    _copy(cursor, "monitoring_sample_stage", batch)
    cursor.execute(
        "INSERT INTO monitoring_sample SELECT * FROM monitoring_sample_stage "
        "ON CONFLICT DO NOTHING RETURNING instrument_id, ts"
    )
    return _select(batch, {(i, to_us(ts)) for i, ts in cursor.fetchall()}, stored=True)


# --- SQLite ----------------------------------------------------------------------------------
def _write_sqlite(batch: SampleBatch) -> SampleBatch:
    """Skip rows already stored (the database is locked for writing: no race), insert the rest."""
    lo, hi = int(batch.ts_us.min()), int(batch.ts_us.max())
    ids = sorted({int(i) for i in np.unique(batch.instrument)})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT instrument_id, ts FROM monitoring_sample "  # noqa: S608 - placeholders only
            f"WHERE instrument_id IN ({', '.join('%s' for _ in ids)}) AND ts >= %s AND ts <= %s",
            [*ids, db_time(lo), db_time(hi)],
        )
        stored = {(i, to_us(ts)) for i, ts in cursor.fetchall()}
        fresh = batch if not stored else _select(batch, stored, stored=False)
        cursor.executemany(
            "INSERT INTO monitoring_sample (instrument_id, ts, c0, c1, c2, c3) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (int(i), db_time(int(t)), *_nullable(v))
                for i, t, v in zip(fresh.instrument, fresh.ts_us, fresh.values, strict=True)
            ],
        )
    return fresh


# --- snapshots -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshots:
    """Per instrument-interval: first sample, count, per-channel min and max (NaN: no channel)."""

    instrument: np.ndarray
    bucket_us: np.ndarray
    ts_us: np.ndarray
    first: np.ndarray  # (n, MAX_CHANNELS)
    count: np.ndarray
    low: np.ndarray  # (n, MAX_CHANNELS)
    high: np.ndarray  # (n, MAX_CHANNELS)

    def columns(self) -> list[np.ndarray]:
        """Arrays in the order of the snapshot table's columns."""
        return [
            self.instrument,
            self.bucket_us,
            self.ts_us,
            *self.first.T,
            self.count,
            *self.low.T,
            *self.high.T,
        ]


def snapshots_of(batch: SampleBatch, interval_s: int) -> Snapshots:
    """Group ``batch`` by instrument and interval, in one sort."""
    bucket = batch.ts_us // (interval_s * 1_000_000)
    order = np.lexsort((batch.ts_us, bucket, batch.instrument))
    instrument, bucket, ts = batch.instrument[order], bucket[order], batch.ts_us[order]
    values = batch.values[order]
    change = (instrument[1:] != instrument[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(np.concatenate(([True], change)))
    return Snapshots(
        instrument=instrument[starts],
        bucket_us=bucket[starts] * interval_s * 1_000_000,
        ts_us=ts[starts],
        first=values[starts],
        count=np.diff(np.append(starts, len(order))),
        low=np.minimum.reduceat(values, starts, axis=0),
        high=np.maximum.reduceat(values, starts, axis=0),
    )


def _upsert_snapshots(batch: SampleBatch, interval_s: int) -> None:
    if not len(batch):
        return
    snapshots = snapshots_of(batch, interval_s)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Staged with one binary COPY, merged with one statement.
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS monitoring_snapshot_stage "
                "(LIKE monitoring_snapshot) ON COMMIT DELETE ROWS"
            )
            arrays = snapshots.columns()
            for i in (1, 2):  # bucket and ts: PostgreSQL's epoch
                arrays[i] = arrays[i] - PG_EPOCH_OFFSET_US
            copy_columns(cursor, "monitoring_snapshot_stage", _SNAPSHOT_COLUMNS, arrays)
            cursor.execute(_snapshot_upsert("postgresql"))
            cursor.execute("TRUNCATE monitoring_snapshot_stage")
        else:
            cursor.executemany(_snapshot_upsert(connection.vendor), _snapshot_tuples(snapshots))


def _snapshot_tuples(snapshots: Snapshots) -> list[tuple]:
    columns = snapshots.columns()
    rows = []
    for k in range(len(snapshots.instrument)):
        row = [column[k].item() for column in columns]
        row[1], row[2] = db_time(row[1]), db_time(row[2])
        rows.append(tuple(None if v != v else v for v in row))  # NaN marks "no channel"
    return rows


@cache
def _snapshot_upsert(vendor: str) -> str:
    """Insert snapshot rows; on conflict keep the earlier first sample, add counts, widen
    min/max (so batches may arrive in any order)."""
    least, greatest = ("LEAST", "GREATEST") if vendor == "postgresql" else ("MIN", "MAX")
    old, earlier = "monitoring_snapshot", "excluded.ts < monitoring_snapshot.ts"
    updates = [f"n = {old}.n + excluded.n"]
    updates += [
        f"{c} = CASE WHEN {earlier} THEN excluded.{c} ELSE {old}.{c} END" for c in ["ts", *_COLUMNS]
    ]
    updates += [f"min{i} = {least}({old}.min{i}, excluded.min{i})" for i in range(MAX_CHANNELS)]
    updates += [f"max{i} = {greatest}({old}.max{i}, excluded.max{i})" for i in range(MAX_CHANNELS)]
    if vendor == "postgresql":
        # NaN stands for "no such channel" in the stage (binary COPY rows are fixed-width).
        picks = [c if c in _NOT_NULL else f"NULLIF({c}, 'NaN')" for c in _SNAPSHOT_COLUMNS]
        source = f"SELECT {', '.join(picks)} FROM monitoring_snapshot_stage"  # noqa: S608
    else:
        source = "VALUES (" + ", ".join(["%s"] * len(_SNAPSHOT_COLUMNS)) + ")"
    return (
        f"INSERT INTO monitoring_snapshot ({', '.join(_SNAPSHOT_COLUMNS)}) {source} "
        "ON CONFLICT (instrument_id, bucket) DO UPDATE SET " + ", ".join(updates)
    )


# --- helpers ---------------------------------------------------------------------------------
def _nullable(values: np.ndarray) -> list[float | None]:
    return [None if v != v else float(v) for v in values.tolist()]  # NaN marks "no channel"


def db_time(us: int) -> str:
    value = connection.ops.adapt_datetimefield_value(to_datetime(us))
    assert value is not None  # None only for a None datetime
    return value


def to_us(value: datetime | str) -> int:
    """Microseconds since the epoch, exactly (SQLite hands back naive UTC times)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _select(batch: SampleBatch, keys: set[tuple[int, int]], *, stored: bool) -> SampleBatch:
    """The rows whose (instrument, time) is in ``keys`` (``stored``) or is not."""
    pairs = zip(batch.instrument.tolist(), batch.ts_us.tolist(), strict=True)
    return batch.take(np.array([(key in keys) == stored for key in pairs], dtype=bool))
