"""Cost of recording one PNM transaction with 100k and with 1M transactions already stored.

"Recording" is the database part of staging (the Transaction insert, the capture's state
change and the atomic bump of Operation.collected, in one transaction): the part that
PyPNM's whole-file JSON rewrite made O(N). Existing rows are generated set-based in
PostgreSQL (INSERT ... SELECT generate_series) in a throw-away database.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

SIZES = (0, 100_000, 1_000_000)
SAMPLES = 300
BATCH = 250_000


def fill(operation, upto: int, start: int) -> None:
    """Existing captures + transactions ``start`` .. ``upto`` - 1, set-based."""
    for low in range(start, upto, BATCH):
        high = min(upto, low + BATCH)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO captures_capture
                    (operation_id, tick, test, channel_id, if_index, file_name, state,
                     spool_path, triggered_at, deadline, error)
                SELECT %s, g, 'DS_OFDM_RXMER_PER_SUBCAR', 193, 3, 'fill_' || g || '.bin',
                       'stored', '', now(), now(), ''
                FROM generate_series(%s, %s) g
                """,
                [operation.pk, low, high - 1],
            )
            # Fresh statistics, or the deferred FK checks plan a scan per row (O(n^2)).
            cursor.execute("ANALYZE captures_capture")
            cursor.execute(
                """
                INSERT INTO captures_transaction
                    (transaction_id, capture_id, capture_group_id, modem_id, timestamp,
                     mac_address, pnm_test_type, channel_id, filename, stored_path,
                     is_compressed, codec, level, size_before, size_after, sha256,
                     device_details)
                SELECT substr(md5(c.file_name), 1, 16), c.id, %s, %s, now(),
                       'aa:bb:cc:00:00:01', 'DS_OFDM_RXMER_PER_SUBCAR', 193,
                       c.file_name || '.zst', 'pnm/x/' || c.file_name || '.zst',
                       true, 'zstd', 3, 7628, 4050, md5(c.file_name) || md5(c.file_name),
                       '{}'::jsonb
                FROM captures_capture c
                WHERE c.operation_id = %s AND c.tick BETWEEN %s AND %s
                """,
                [operation.capture_group_id, operation.modem_id, operation.pk, low, high - 1],
            )
    with connection.cursor() as cursor:  # let the bulk load settle before timing
        cursor.execute("VACUUM ANALYZE captures_capture")
        cursor.execute("VACUUM ANALYZE captures_transaction")
        cursor.execute("CHECKPOINT")


def measure(operation, first_tick: int) -> list[float]:
    """Milliseconds to record each of SAMPLES new transactions."""
    from captures import staging, storage
    from captures.models import Capture, CaptureState
    from tests.factories import rxmer_capture

    stored = storage.StoredFile("pnm/x/bench.zst", 7628, 4050, "0" * 64, 3)
    timings = []
    for offset in range(SAMPLES):
        tick = first_tick + offset
        capture = rxmer_capture(operation, tick, 194, f"bench_{tick}.bin")
        assert capture is not None  # every tick is new
        Capture.objects.filter(pk=capture.pk).update(state=CaptureState.UPLOADED)
        capture.state = CaptureState.UPLOADED
        capture.operation = operation
        started = time.perf_counter()
        records = staging._record([staging.Staged(capture, f"bench_{tick}.bin.zst", stored, None)])
        timings.append((time.perf_counter() - started) * 1000)
        assert len(records) == 1
    return timings


def main() -> None:
    # Our own throw-away database, never the test suite's test_<name>.
    connection.settings_dict["TEST"]["NAME"] = f"bench_pnm_record_{os.getpid()}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from tests.factories import make_operation

        operation = make_operation(duration_s=10**6, sample_interval_s=1)
        existing = 0
        print(f"recording one transaction ({SAMPLES} samples each), PostgreSQL")
        for size in SIZES:
            started = time.perf_counter()
            fill(operation, size, existing)
            existing = size
            filled_s = time.perf_counter() - started
            timings = measure(operation, 10**7 + size)
            timings.sort()
            print(
                f"  {size:>9,} existing: p50 {statistics.median(timings):.2f} ms, "
                f"p95 {timings[int(0.95 * len(timings))]:.2f} ms, "
                f"max {timings[-1]:.2f} ms  (fill {filled_s:.0f} s)"
            )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
