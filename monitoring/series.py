"""Decimated series of one instrument over a time range, in the API's response shape.

Short ranges inside the full-rate window read raw samples; long ranges (or ranges reaching
past the retention watermark) read the snapshot table, where each interval contributes its
min (at the interval's start) and its max (at its middle). Either way the points are then
reduced with MinMax to at most ``max_points`` per channel.

On PostgreSQL rows are fetched with ``COPY (SELECT …) TO STDOUT (FORMAT BINARY)`` and parsed
by numpy in one call: fixed-width rows, no Python object per value.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import connection

from core.decimate import minmax_indices
from monitoring.models import Instrument, RetentionState
from monitoring.storage import PG_EPOCH_OFFSET_US, db_time, to_datetime, to_us

RAW, MINUTE = "raw", "minute"


def instrument_payload(instrument: Instrument) -> dict:
    return {
        "id": instrument.pk,
        "name": instrument.name,
        "kind": instrument.kind,
        "channels": list(instrument.channels),
    }


def watermark() -> datetime | None:
    return (
        RetentionState.objects.filter(pk=RetentionState.SINGLETON_ID)
        .values_list("watermark", flat=True)
        .first()
    )


def resolution(start: datetime, end: datetime, flushed_until: datetime | None) -> str:
    """Raw for short ranges whose raw samples still exist, the snapshot table otherwise."""
    short = (end - start).total_seconds() <= settings.MONITORING_SERIES_RAW_MAX_S
    kept = flushed_until is None or start >= flushed_until
    return RAW if short and kept else MINUTE


def series(
    instrument: Instrument,
    start: datetime,
    end: datetime,
    max_points: int,
    flushed_until: datetime | None,
) -> dict:
    """The response for one instrument: see the module docstring."""
    level = resolution(start, end, flushed_until)
    count = len(instrument.channels)
    lo, hi = to_us(start), to_us(end)
    if level == RAW:
        t_us, values = _raw(instrument.pk, lo, hi, count)
    else:
        t_us, values = _minute(instrument.pk, lo, hi, count)
    t_ms = t_us // 1000
    out = {}
    for i, name in enumerate(instrument.channels):
        keep = minmax_indices(t_ms, [values[:, i]], lo // 1000, hi // 1000, max_points)
        out[name] = list(zip(t_ms[keep].tolist(), values[keep, i].tolist(), strict=True))
    return {
        "instrument": instrument_payload(instrument),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "resolution": level,
        "max_points": max_points,
        "series": out,
    }


def _raw(instrument_id: int, lo: int, hi: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    values = [f"c{i}" for i in range(count)]
    return _fetch("monitoring_sample", "ts", values, instrument_id, lo, hi)


def _minute(instrument_id: int, lo: int, hi: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Each interval as two points: (start, min) and (middle, max)."""
    values = [f"min{i}" for i in range(count)] + [f"max{i}" for i in range(count)]
    t_us, both = _fetch("monitoring_snapshot", "bucket", values, instrument_id, lo, hi)
    half_us = settings.MONITORING_SNAPSHOT_INTERVAL_S * 500_000
    t = np.empty(2 * len(t_us), dtype=np.int64)
    t[0::2], t[1::2] = t_us, t_us + half_us
    points = np.empty((2 * len(t_us), count))
    points[0::2], points[1::2] = both[:, :count], both[:, count:]
    return t, points


def _fetch(table: str, time_column: str, columns: list[str], instrument_id: int, lo: int, hi: int):
    """(times in µs, values of shape (n, len(columns))) of one instrument, in time order.

    PostgreSQL packs each column into one ``bytea`` of binary values (``string_agg`` of
    ``float8send``), so a 36,000-row hour crosses the wire as 5 values and numpy reads them
    with ``frombuffer``: no Python object per row.
    """
    where = f"FROM {table} WHERE instrument_id = %s AND {time_column} >= %s AND {time_column} < %s"
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {time_column}, {', '.join(columns)} {where} ORDER BY {time_column}",
                [instrument_id, db_time(lo), db_time(hi)],
            )
            rows = cursor.fetchall()
        t = np.array([to_us(row[0]) for row in rows], dtype=np.int64)
        return t, np.array([row[1:] for row in rows], dtype=np.float64).reshape(-1, len(columns))
    # No ORDER BY: the planner's bitmap scan returns rows in heap order, which is time order
    # but for late batches; numpy sorts what is not (cheaper than a sort in the query).
    packed = ["string_agg(timestamptz_send(t), '')"]
    packed += [f"string_agg(float8send(v{i}), '')" for i in range(len(columns))]
    inner = ", ".join([f"{time_column} AS t"] + [f"{c} AS v{i}" for i, c in enumerate(columns)])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(packed)} FROM (SELECT {inner} {where}) AS rows",  # noqa: S608
            [instrument_id, to_datetime(lo), to_datetime(hi)],
        )
        row = cursor.fetchone()
    if row[0] is None:
        return np.empty(0, dtype=np.int64), np.empty((0, len(columns)))
    t = np.frombuffer(row[0], dtype=">i8").astype(np.int64) + PG_EPOCH_OFFSET_US
    values = np.column_stack([np.frombuffer(v, dtype=">f8") for v in row[1:]])
    if np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t, values = t[order], values[order]
    return t, values.astype(np.float64)
