"""Retention: thinning 1 day x 10 instruments at 10 Hz (8.64 M rows) to one row per minute.

Throw-away database (``bench_monitoring_retention_<pid>``). The day is written through the
ingest storage path (binary COPY + snapshot merge, timed and printed). Then, on the same
rows:

* the project's flush (``monitoring.retention.flush_retention``): the expired day
  partition is dropped and the watermark moved, the snapshots being kept since ingest;
* for comparison, what computing the snapshots at flush time would cost instead
  (``INSERT … SELECT DISTINCT ON`` over the day partition), not used by the project;
* the seed's loop (002, "Database flush and snapshot"): per 1-minute slice fetch every
  instrument's rows, then per instrument keep the first row and DELETE the rest, write the
  cleanup timestamp, autocommit. It runs on a seed-shaped copy of the same 8.64 M rows
  (``cbpm3``: timestamp, instr, 4 buttons) given its best index, (instr, timestamp). The
  loop runs for LOOP_BUDGET_S on the first slices of the day and is extrapolated to the
  14,400 instrument-minutes of the day; its kept rows are checked against the project's.

Goal: the flush >= 100x faster than the loop. Bounded: about 3-4 min.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
from bench_monitoring_ingest import throwaway_database
from django.conf import settings
from django.db import connection, transaction

INSTRUMENTS = 10
DAY = datetime(2026, 1, 5, tzinfo=UTC)
RATE_HZ = 10
CHUNK_S = 3600
LOOP_BUDGET_S = 60.0


def load_day(ids: list[int]) -> int:
    from monitoring.storage import SampleBatch, to_us, write_batch

    rng = np.random.default_rng(2)
    t_day = to_us(DAY)
    per_chunk = CHUNK_S * RATE_HZ
    total = 0
    for chunk in range(86_400 // CHUNK_S):
        tick = np.arange(per_chunk) + chunk * per_chunk
        parts = []
        for k, instrument in enumerate(ids):
            # 10 Hz with a per-instrument phase and jitter, as real monitors tick
            ts = t_day + tick * 100_000 + k * 997 + rng.integers(0, 500, per_chunk)
            parts.append((np.full(per_chunk, instrument), ts))
        instruments = np.concatenate([p[0] for p in parts])
        ts = np.concatenate([p[1] for p in parts])
        order = np.argsort(ts, kind="stable")  # interleaved in time, as live ingest writes
        values = rng.normal(1000.0, 50.0, (len(ts), 4)).round(2)
        batch = SampleBatch(instruments[order], ts[order], values, np.full(len(ts), 4, np.int8))
        with transaction.atomic():
            total += write_batch(batch, settings.MONITORING_SNAPSHOT_INTERVAL_S)
    return total


def seed_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE cbpm3 (timestamp timestamptz, instr text, top_in float8, "
            "bot_in float8, bot_out float8, top_out float8)"
        )
        cursor.execute(
            "INSERT INTO cbpm3 SELECT s.ts, i.name, s.c0, s.c1, s.c2, s.c3 "
            "FROM monitoring_sample s JOIN monitoring_instrument i ON i.id = s.instrument_id "
            "ORDER BY s.ts"
        )
        cursor.execute("CREATE INDEX cbpm3_instr_ts ON cbpm3 (instr, timestamp)")
        cursor.execute("CREATE TABLE cbpm3_cleanup (ts timestamptz)")
        cursor.execute("INSERT INTO cbpm3_cleanup VALUES (%s)", [DAY])
        cursor.execute("ANALYZE cbpm3")


def snapshot_at_flush_time_s() -> float:
    """What the flush would spend computing first-per-minute rows from the raw day."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE first_per_minute AS "
            "SELECT DISTINCT ON (instrument_id, date_bin('60 s', ts, 'epoch')) * "
            "FROM monitoring_sample_p20260105 "
            "ORDER BY instrument_id, date_bin('60 s', ts, 'epoch'), ts"
        )
        cursor.execute("DROP TABLE first_per_minute")
    return time.perf_counter() - started


def seed_loop(names: list[str]) -> tuple[int, float]:
    """The seed's loop until the budget is spent: (minutes done, seconds spent)."""
    started = time.perf_counter()
    minutes = 0
    with connection.cursor() as cursor:
        while time.perf_counter() - started < LOOP_BUDGET_S and minutes < 1440:
            cursor.execute("SELECT ts FROM cbpm3_cleanup")  # the last cleanup
            begin = cursor.fetchone()[0]
            end = begin + timedelta(minutes=1)
            cursor.execute(
                "SELECT timestamp, instr, top_in, bot_in, bot_out, top_out FROM cbpm3 "
                "WHERE timestamp >= %s AND timestamp < %s ORDER BY timestamp",
                [begin, end],
            )
            rows = cursor.fetchall()
            for name in names:
                first = next((row for row in rows if row[1] == name), None)
                if first is None:
                    continue
                cursor.execute(
                    "DELETE FROM cbpm3 WHERE instr = %s AND timestamp >= %s "
                    "AND timestamp < %s AND timestamp <> %s",
                    [name, begin, end, first[0]],
                )
            cursor.execute("UPDATE cbpm3_cleanup SET ts = %s", [end])
            minutes += 1
    return minutes, time.perf_counter() - started


def loop_agrees_with_snapshots(minutes: int) -> bool:
    end = DAY + timedelta(minutes=minutes)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT instr, timestamp FROM cbpm3 WHERE timestamp < %s "
            "EXCEPT SELECT i.name, s.ts FROM monitoring_snapshot s "
            "JOIN monitoring_instrument i ON i.id = s.instrument_id WHERE s.bucket < %s",
            [end, end],
        )
        extra = cursor.fetchall()
        cursor.execute("SELECT count(*) FROM monitoring_snapshot WHERE bucket < %s", [end])
        kept = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM cbpm3 WHERE timestamp < %s", [end])
        return not extra and cursor.fetchone()[0] == kept


def main() -> None:
    from monitoring.models import Instrument
    from monitoring.retention import flush_retention

    with throwaway_database("bench_monitoring_retention"):
        names = [f"R{i:02d}" for i in range(INSTRUMENTS)]
        ids = [Instrument.objects.create(name=n).pk for n in names]
        started = time.perf_counter()
        rows = load_day(ids)
        load_s = time.perf_counter() - started
        seed_table()
        rebuild_s = snapshot_at_flush_time_s()

        window = timedelta(seconds=settings.MONITORING_FULL_RATE_WINDOW_S)
        now = DAY + timedelta(days=1) + window + timedelta(seconds=30)
        started = time.perf_counter()
        result = flush_retention(now)
        flush_s = time.perf_counter() - started

        minutes, loop_s = seed_loop(names)
        agrees = loop_agrees_with_snapshots(minutes)
    per_instrument_minute_ms = loop_s / (minutes * INSTRUMENTS) * 1000
    loop_day_s = per_instrument_minute_ms * 1440 * INSTRUMENTS / 1000
    print(f"rows: {rows:,} (1 day x {INSTRUMENTS} instruments x {RATE_HZ} Hz)")
    print(f"ingest storage path (COPY + snapshot merge, no parsing): {rows / load_s:,.0f} rows/s")
    print(
        f"project flush: {flush_s * 1000:.1f} ms — kept {result.kept:,}, removed "
        f"{result.removed:,}, dropped {', '.join(result.dropped)}"
    )
    print(f"  (computing the snapshots at flush time instead would add {rebuild_s:.1f} s)")
    print(
        f"seed loop: {minutes} minutes x {INSTRUMENTS} instruments in {loop_s:.1f} s = "
        f"{per_instrument_minute_ms:.2f} ms per instrument-minute; kept rows identical: {agrees}"
    )
    print(f"  extrapolated to the day (14,400 instrument-minutes): {loop_day_s:,.0f} s")
    print(f"speed-up of the flush over the loop: {loop_day_s / flush_s:,.0f}x")
    with_rebuild = loop_day_s / (flush_s + rebuild_s)
    print(f"  (over the loop, even with flush-time snapshots: {with_rebuild:,.0f}x)")


if __name__ == "__main__":
    main()
