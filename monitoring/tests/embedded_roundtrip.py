"""Run inside the embedded demo's settings (SQLite, file cache) by ``test_embedded_sqlite``:
ingest, retention and series on the SQLite fallback. Prints what it saw as one JSON object.

Not a test module itself: the test suite's database is PostgreSQL, so this runs in a child
process started with ``manage.py shell -c`` and no DATABASE_URL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection

from core import locks
from monitoring import retention, series
from monitoring.ingest import IngestError, ingest_json, ingest_line_protocol
from monitoring.models import Instrument, Snapshot
from monitoring.storage import to_us
from monitoring.tests.helpers import (
    batch_of,
    expected_after_flush,
    generated,
    rows_of,
    store,
    stored_rows,
)

START = datetime(2026, 10, 1, tzinfo=UTC)


def main() -> None:
    seen: dict[str, object] = {"vendor": connection.vendor}
    bpm = Instrument.objects.create(name="EMB01")
    now = datetime.now(UTC)
    lines = [
        f"bpm,instrument=EMB01 top_in={k},bot_in=1,bot_out=2,top_out=3 "
        f"{int((now.timestamp() - 60) * 1e9) + k * 10**8}"
        for k in range(20)
    ]
    seen["first"] = ingest_line_protocol("\n".join(lines[:10])).written
    seen["retried"] = ingest_line_protocol("\n".join(lines)).written  # 10 old, 10 new
    try:
        ingest_line_protocol("\n".join([*lines, "bpm,instrument=NOPE top_in=1"]))
    except IngestError as exc:
        seen["rejected"] = str(exc)
    seen["json"] = ingest_json(
        [{"instrument": bpm.pk, "ts": now.timestamp() - 1, "values": [1, 2, 3, 4]}]
    ).written
    seen["snapshot_n"] = sum(Snapshot.objects.filter(instrument=bpm).values_list("n", flat=True))

    # Retention against the brute-force reference, on the data of other instruments.
    Instrument.objects.filter(pk=bpm.pk).delete()
    ids = [Instrument.objects.create(name=f"EMB{i}").pk for i in range(2, 4)]
    batch = generated(ids, START, hours=3, step_s=7)
    store(batch)
    cutoff = START + timedelta(hours=1, minutes=30)
    edge = [(ids[0], to_us(cutoff) + d, (1.0, 2.0, 3.0, 4.0)) for d in (-1, 0)]  # either side
    store(batch_of(edge), chunks=1)
    rows = [*rows_of(batch), *edge]
    flush_at = cutoff + timedelta(seconds=settings.MONITORING_FULL_RATE_WINDOW_S, minutes=0.5)
    other = locks.acquire(retention.LEASE_KEY, 60)
    seen["second_runner_ran"] = retention.flush_retention(flush_at).ran
    assert other is not None
    assert other.release()
    result = retention.flush_retention(flush_at)
    expected = expected_after_flush(rows, to_us(result.cutoff))
    seen["flush"] = {"ran": result.ran, "kept": result.kept, "removed": result.removed}
    seen["flush_matches_reference"] = stored_rows() == expected
    seen["expected_removed"] = len(rows) - len(expected)
    seen["cutoff_as_expected"] = result.cutoff == cutoff

    instrument = Instrument.objects.get(pk=ids[0])
    mark = series.watermark()
    raw = series.series(instrument, result.cutoff, START + timedelta(hours=3), 200, mark)
    minute = series.series(instrument, START, START + timedelta(hours=3), 200, mark)
    seen["raw"] = (raw["resolution"], len(raw["series"]["top_in"]))
    seen["minute"] = (minute["resolution"], len(minute["series"]["top_in"]))
    print(json.dumps(seen))
