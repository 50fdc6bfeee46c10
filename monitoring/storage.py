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
        columns = ", ".join(["instrument_id", "ts", *_COLUMNS[:count]])
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(copy_buffer(rows, int(count)))


def copy_buffer(batch: SampleBatch, count: int) -> bytes:
    """The binary COPY stream of (instrument_id, ts, c0..c<count-1>)."""
    spec = [("fields", ">i2"), ("l0", ">i4"), ("instrument", ">i8"), ("l1", ">i4"), ("ts", ">i8")]
    for i in range(count):
        spec += [(f"l{i + 2}", ">i4"), (f"c{i}", ">f8")]
    rows = np.empty(len(batch), dtype=np.dtype(spec))
    rows["fields"] = 2 + count
    for i in range(count + 2):
        rows[f"l{i}"] = 8
    rows["instrument"] = batch.instrument
    rows["ts"] = batch.ts_us - PG_EPOCH_OFFSET_US
    for i in range(count):
        rows[f"c{i}"] = batch.values[:, i]
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


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
def _upsert_snapshots(batch: SampleBatch, interval_s: int) -> None:
    rows = snapshot_rows(batch, interval_s)
    if not rows:
        return
    least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
    old, earlier = "monitoring_snapshot", "excluded.ts < monitoring_snapshot.ts"
    updates = [f"n = {old}.n + excluded.n"]
    updates += [
        f"{c} = CASE WHEN {earlier} THEN excluded.{c} ELSE {old}.{c} END" for c in ["ts", *_COLUMNS]
    ]
    updates += [f"min{i} = {least}({old}.min{i}, excluded.min{i})" for i in range(MAX_CHANNELS)]
    updates += [f"max{i} = {greatest}({old}.max{i}, excluded.max{i})" for i in range(MAX_CHANNELS)]
    placeholders = ", ".join(["%s"] * len(_SNAPSHOT_COLUMNS))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO monitoring_snapshot ({', '.join(_SNAPSHOT_COLUMNS)}) "  # noqa: S608
            f"VALUES ({placeholders}) ON CONFLICT (instrument_id, bucket) DO UPDATE SET "
            + ", ".join(updates),
            rows,
        )


def snapshot_rows(batch: SampleBatch, interval_s: int) -> list[tuple]:
    """Per instrument-interval of ``batch``: first sample, count, per-channel min and max."""
    if not len(batch):
        return []
    bucket = batch.ts_us // (interval_s * 1_000_000)
    order = np.lexsort((batch.ts_us, bucket, batch.instrument))
    instrument, bucket, ts = batch.instrument[order], bucket[order], batch.ts_us[order]
    values = batch.values[order]
    change = (instrument[1:] != instrument[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(np.concatenate(([True], change)))
    counts = np.diff(np.append(starts, len(order)))
    mins = np.minimum.reduceat(values, starts, axis=0)
    maxs = np.maximum.reduceat(values, starts, axis=0)
    to_time = db_time if connection.vendor != "postgresql" else to_datetime
    return [
        (
            int(instrument[s]),
            to_time(int(bucket[s]) * interval_s * 1_000_000),
            to_time(int(ts[s])),
            *_nullable(values[s]),
            int(counts[k]),
            *_nullable(mins[k]),
            *_nullable(maxs[k]),
        )
        for k, s in enumerate(starts)
    ]


# --- helpers ---------------------------------------------------------------------------------
def _nullable(values: np.ndarray) -> list[float | None]:
    return [None if v != v else float(v) for v in values.tolist()]  # NaN marks "no channel"


def db_time(us: int) -> str:
    return connection.ops.adapt_datetimefield_value(to_datetime(us))


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
