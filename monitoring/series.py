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

from monitoring.decimate import minmax_indices
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
        keep = minmax_indices(t_ms, values[:, i], lo // 1000, hi // 1000, max_points)
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
    columns = ", ".join(f"c{i}" for i in range(count))
    sql = (
        f"SELECT ts, {columns} FROM monitoring_sample "  # noqa: S608 - column names are ours
        "WHERE instrument_id = %s AND ts >= %s AND ts < %s ORDER BY ts"
    )
    return _fetch(sql, instrument_id, lo, hi, count)


def _minute(instrument_id: int, lo: int, hi: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Each interval as two points: (start, min) and (middle, max)."""
    columns = ", ".join([f"min{i}" for i in range(count)] + [f"max{i}" for i in range(count)])
    sql = (
        f"SELECT bucket, {columns} FROM monitoring_snapshot "  # noqa: S608 - column names are ours
        "WHERE instrument_id = %s AND bucket >= %s AND bucket < %s ORDER BY bucket"
    )
    half_us = settings.MONITORING_SNAPSHOT_INTERVAL_S * 500_000
    t_us, both = _fetch(sql, instrument_id, lo, hi, 2 * count)
    t = np.empty(2 * len(t_us), dtype=np.int64)
    t[0::2], t[1::2] = t_us, t_us + half_us
    values = np.empty((2 * len(t_us), count))
    values[0::2], values[1::2] = both[:, :count], both[:, count:]
    return t, values


def _fetch(sql: str, instrument_id: int, lo: int, hi: int, count: int):
    """(times in µs, float values of shape (n, count)) for a query of ``ts, v0..v<count-1>``."""
    if connection.vendor == "postgresql":
        return _fetch_copy(sql, [instrument_id, to_datetime(lo), to_datetime(hi)], count)
    with connection.cursor() as cursor:
        cursor.execute(sql, [instrument_id, db_time(lo), db_time(hi)])
        rows = cursor.fetchall()
    t = np.array([to_us(row[0]) for row in rows], dtype=np.int64)
    values = np.array([row[1:] for row in rows], dtype=np.float64).reshape(-1, count)
    return t, values


def _fetch_copy(sql: str, params: list, count: int) -> tuple[np.ndarray, np.ndarray]:
    spec = [("fields", ">i2"), ("l0", ">i4"), ("ts", ">i8")]
    for i in range(count):
        spec += [(f"l{i + 1}", ">i4"), (f"v{i}", ">f8")]
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", params) as copy,
    ):
        data = b"".join(bytes(chunk) for chunk in copy)
    # 11-byte signature, flags, header-extension length (0), rows, then a -1 trailer.
    body = data[19:-2]
    rows = np.frombuffer(body, dtype=np.dtype(spec))
    t = rows["ts"].astype(np.int64) + PG_EPOCH_OFFSET_US
    values = np.empty((len(rows), count))
    for i in range(count):
        values[:, i] = rows[f"v{i}"]
    return t, values
