"""The retention flush: raw samples older than the full-rate window are removed for good.

What stays of them is already in the snapshot table: ingest writes the first sample of
every instrument-interval there in the same transaction as the raw rows. So the flush only
has to move the watermark and remove raw rows before it, and does so without looking at a
single instrument or minute:

* whole day partitions before the cutoff are dropped (PostgreSQL; milliseconds, no bloat);
* the rest of the way to the cutoff is one ``DELETE … WHERE ts < cutoff`` (a minute of rows
  per run at steady state, found through a BRIN index on ``ts``).

All of it, and the watermark, change in one transaction: a flush killed half-way leaves
nothing behind and the next run does the same work again. One runner at a time: a
PostgreSQL advisory lock (held by the transaction itself), on SQLite a ``core.locks`` lease;
a second runner returns at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core import locks
from monitoring import partitions
from monitoring.models import RetentionState
from monitoring.storage import EPOCH

log = logging.getLogger(__name__)

LOCK_ID = 0x6D6F6E66  # "monf": the flush's advisory lock
LEASE_KEY = "monitoring:retention-flush"


@dataclass
class FlushResult:
    ran: bool
    cutoff: datetime
    watermark_before: datetime | None = None
    kept: int = 0
    removed: int = 0
    dropped: list[str] = field(default_factory=list)


def cutoff_for(now: datetime, window_s: int, interval_s: int) -> datetime:
    """Start of the first interval still kept at full rate (intervals align to the epoch)."""
    seconds = int((now - timedelta(seconds=window_s) - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % interval_s)


def flush_retention(now: datetime | None = None) -> FlushResult:
    """Thin everything older than the full-rate window; see the module docstring."""
    now = now or timezone.now()
    cutoff = cutoff_for(
        now, settings.MONITORING_FULL_RATE_WINDOW_S, settings.MONITORING_SNAPSHOT_INTERVAL_S
    )
    with _one_runner() as running:
        if not running:
            log.info("retention flush skipped: another flush is running")
            return FlushResult(ran=False, cutoff=cutoff)
        result = _flush(cutoff)
    if connection.vendor == "postgresql":
        _create_days_ahead(now)
    if result.kept or result.removed or result.dropped:
        log.info(
            "retention flush to %s: kept %d snapshot rows, removed %d rows, dropped %s",
            cutoff.isoformat(),
            result.kept,
            result.removed,
            ", ".join(result.dropped) or "no partition",
        )
    return result


def _flush(cutoff: datetime) -> FlushResult:
    """Runs inside the runner's transaction."""
    RetentionState.objects.get_or_create(pk=RetentionState.SINGLETON_ID)
    # Waits for ingest transactions holding the row (FOR KEY SHARE) and holds off new ones.
    state = RetentionState.objects.select_for_update().get(pk=RetentionState.SINGLETON_ID)
    result = FlushResult(ran=True, cutoff=cutoff, watermark_before=state.watermark)
    if state.watermark is not None and state.watermark >= cutoff:
        return result
    # SQLite compares times as text: parameters must be in the stored format.
    since, until = (connection.ops.adapt_datetimefield_value(t) for t in (state.watermark, cutoff))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            timeout_ms = int(settings.MONITORING_FLUSH_LOCK_TIMEOUT_S * 1000)
            cursor.execute(f"SET LOCAL lock_timeout = {timeout_ms}")
        after = "" if since is None else " AND bucket >= %s"
        cursor.execute(
            "SELECT count(*), coalesce(sum(n), 0) FROM monitoring_snapshot "  # noqa: S608
            f"WHERE bucket < %s{after}",
            [until] if since is None else [until, since],
        )
        kept, received = cursor.fetchone()
        if connection.vendor == "postgresql":
            result.dropped = partitions.partitions_before(cursor, cutoff)
            for name in result.dropped:
                cursor.execute(f"DROP TABLE {name}")
        cursor.execute("DELETE FROM monitoring_sample WHERE ts < %s", [until])
    result.kept, result.removed = int(kept), int(received) - int(kept)
    state.watermark = cutoff
    state.flushed_at = timezone.now()
    state.last_kept, state.last_removed = result.kept, result.removed
    state.save()
    return result


@contextmanager
def _one_runner() -> Iterator[bool]:
    """A transaction that only one flush at a time gets to use (yields False otherwise)."""
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_ID])
            yield bool(cursor.fetchone()[0])
        return
    # A flush runs as a task, which is killed at the hard time limit: the lease outlives it.
    with locks.held(LEASE_KEY, settings.CELERY_TASK_TIME_LIMIT) as lease:
        if lease is None:
            yield False
            return
        with transaction.atomic():
            yield True


def _create_days_ahead(now: datetime) -> None:
    today = now.date()
    days = [today + timedelta(days=i) for i in range(settings.MONITORING_PARTITIONS_AHEAD_DAYS + 1)]
    with transaction.atomic(), connection.cursor() as cursor:
        created = partitions.ensure_partitions(cursor, days)
    if created:
        log.info("created sample partitions %s", ", ".join(created))
