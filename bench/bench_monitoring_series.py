"""Series latency for one instrument over 1 hour, 1 day and 14 days at max_points=2000.

Throw-away database (``bench_monitoring_series_<pid>``) holding 20 BPMs: the last 2 hours at
10 Hz through the ingest storage path (1.44 M raw rows, instruments interleaved in time as
live ingest writes them), and 14 days of minute snapshots before that (403,200 rows, bulk
loaded); values carry 2 decimals, like calibrated ADC counts. Each request goes through the
whole API stack in-process (token auth, DRF, query, MinMax decimation, JSON, gzip), with a
different range every time so the server-side cache never answers; the last line shows a
cache hit. 1 hour reads raw samples (36,000 rows); 1 day and 14 days read the snapshot
table. Goal: p95 < 100 ms. Bounded: about 1 min.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import numpy as np
from bench_monitoring_ingest import throwaway_database
from django.conf import settings
from django.db import connection, transaction

INSTRUMENTS = 20
RAW_HOURS = 2
SNAPSHOT_DAYS = 14
REQUESTS = 40
RANGES = {"1 hour": timedelta(hours=1), "1 day": timedelta(days=1), "14 days": timedelta(days=14)}


def load(ids: list[int], now: datetime) -> None:
    """Raw samples for the last hours, snapshots for the 14 days before."""
    from monitoring.storage import (
        PG_EPOCH_OFFSET_US,
        SampleBatch,
        copy_columns,
        to_us,
        write_batch,
    )

    rng = np.random.default_rng(3)
    interval = settings.MONITORING_SNAPSHOT_INTERVAL_S
    raw_start = now - timedelta(hours=RAW_HOURS)
    raw_start -= timedelta(seconds=raw_start.timestamp() % interval)
    t0 = to_us(raw_start)
    for hour in range(RAW_HOURS):
        tick = np.arange(hour * 36_000, (hour + 1) * 36_000)
        instrument = np.repeat(np.array(ids), len(tick))
        ts = np.tile(t0 + tick * 100_000, len(ids)) + instrument * 7
        order = np.argsort(ts, kind="stable")
        values = rng.normal(1000.0, 50.0, (len(ts), 4)).round(2)  # ADC-like resolution
        batch = SampleBatch(instrument[order], ts[order], values, np.full(len(ts), 4, np.int8))
        with transaction.atomic():
            write_batch(batch, interval)

    buckets = np.arange(t0 - SNAPSHOT_DAYS * 86_400_000_000, t0, interval * 1_000_000)
    instrument = np.repeat(np.array(ids), len(buckets))
    bucket = np.tile(buckets, len(ids))
    first = rng.normal(1000.0, 50.0, (len(bucket), 4)).round(2)
    columns = [instrument, bucket - PG_EPOCH_OFFSET_US, bucket + 5_000 - PG_EPOCH_OFFSET_US]
    columns += [*first.T, np.full(len(bucket), 600), *(first - 80).T, *(first + 80).T]
    names = ["instrument_id", "bucket", "ts", "c0", "c1", "c2", "c3", "n"]
    names += [f"min{i}" for i in range(4)] + [f"max{i}" for i in range(4)]
    with transaction.atomic(), connection.cursor() as cursor:
        copy_columns(cursor, "monitoring_snapshot", names, columns)
        cursor.execute("ANALYZE monitoring_snapshot")
        cursor.execute("ANALYZE monitoring_sample")


def timed_get(client, url: str, params: dict[str, str | int]) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get(url, params, HTTP_ACCEPT_ENCODING="gzip")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.content[:300]
    return elapsed * 1000, len(response.content)


def main() -> None:
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from accounts.models import ApiToken
    from accounts.roles import grant
    from monitoring.models import Instrument

    with throwaway_database("bench_monitoring_series"):
        ids = [Instrument.objects.create(name=f"S{i:02d}").pk for i in range(INSTRUMENTS)]
        now = datetime.now(UTC)
        load(ids, now)
        user = get_user_model().objects.create_user("bench-viewer")
        grant(user, "viewer")
        _, key = ApiToken.objects.issue(user, "bench", {"read"})
        client = APIClient(HTTP_HOST="localhost")
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        url = f"/api/v1/monitoring/instruments/{ids[7]}/series"
        rng = random.Random(4)
        results: dict[str, tuple[list[float], float, str]] = {}
        for label, span in RANGES.items():
            latencies: list[float] = []
            sizes: list[int] = []
            for _ in range(REQUESTS):
                end = now - timedelta(seconds=rng.uniform(0, 1800))
                params: dict[str, str | int] = {
                    "start": (end - span).isoformat(),
                    "end": end.isoformat(),
                    "max_points": 2000,
                }
                ms, size = timed_get(client, url, params)
                latencies.append(ms)
                sizes.append(size)
            level = client.get(url, params).json()["resolution"]
            results[label] = (latencies, statistics.median(sizes), level)
        hit = [timed_get(client, url, params)[0] for _ in range(REQUESTS)]
    for label, (latencies, median_size, level) in results.items():
        ordered = sorted(latencies)
        p95 = ordered[int(0.95 * len(ordered)) - 1]
        print(
            f"{label:>8} ({level}): p50 {statistics.median(latencies):6.1f} ms, "
            f"p95 {p95:6.1f} ms, {median_size / 1024:.0f} KiB gzipped, {REQUESTS} requests"
        )
    print(f"14 days, server cache hit: p50 {statistics.median(hit):.1f} ms")


if __name__ == "__main__":
    main()
