"""The retention flush against a brute-force reference on generated data (PostgreSQL)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections

from monitoring.models import Instrument, RetentionState
from monitoring.retention import LOCK_ID, cutoff_for, flush_retention
from monitoring.storage import to_us
from monitoring.tests.helpers import (
    batch_of,
    expected_after_flush,
    generated,
    rows_of,
    store,
    stored_rows,
)
from tests.helpers import ROOT, wait_until, worker_environment

WINDOW = timedelta(seconds=settings.MONITORING_FULL_RATE_WINDOW_S)
DAY0 = datetime(2026, 10, 1, tzinfo=UTC)
# Mid-way through the second day: day 0 is dropped whole, day 1 is cut at 13:37.
CUTOFF = DAY0 + timedelta(days=1, hours=13, minutes=37)
NOW = CUTOFF + WINDOW + timedelta(seconds=42)
EDGE_VALUES = (1.0, 2.0, 3.0, 4.0)


@pytest.fixture
def data(db):
    """~9 samples per minute for 3 instruments over 1.5 days, plus rows at the window edge."""
    ids = [Instrument.objects.create(name=f"R{i}").pk for i in range(3)]
    batch = generated(ids, DAY0 + timedelta(hours=20), hours=36, step_s=7)
    edge = [(ids[0], to_us(CUTOFF) + d, EDGE_VALUES) for d in (-1, 0)]  # either side
    store(batch)
    store(batch_of(edge), chunks=1)
    return [*rows_of(batch), *edge]


def _partitions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'monitoring_sample'::regclass ORDER BY 1"
        )
        return [r[0] for r in cursor.fetchall()]


def test_cutoff_aligns_to_the_interval():
    now = datetime(2026, 11, 15, 10, 0, 59, 999, tzinfo=UTC)
    assert cutoff_for(now, 14 * 86400, 60) == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def test_flush_keeps_exactly_the_reference_rows(data):
    assert stored_rows() == set(data)
    result = flush_retention(NOW)
    expected = expected_after_flush(data, to_us(CUTOFF))
    assert result.ran
    assert result.cutoff == CUTOFF
    assert stored_rows() == expected
    assert result.removed == len(data) - len(expected)
    assert result.kept == len([r for r in expected if r[1] < to_us(CUTOFF)])
    assert "monitoring_sample_p20261001" in result.dropped
    assert "monitoring_sample_p20261001" not in _partitions()
    state = RetentionState.objects.get()
    assert (state.watermark, state.last_kept, state.last_removed) == (
        CUTOFF,
        result.kept,
        result.removed,
    )


def test_the_flush_logs_the_rows_kept_and_removed(data, caplog):
    with caplog.at_level(logging.INFO, logger="monitoring.retention"):
        result = flush_retention(NOW)
    assert result.kept > 0
    assert result.removed > 0
    assert f"kept {result.kept} snapshot rows, removed {result.removed} rows" in caplog.text


def test_beat_runs_the_flush_every_minute(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="monitoring.tasks.flush_retention")
    assert task.enabled
    assert task.interval is not None
    assert (task.interval.every, task.interval.period) == (60, "seconds")
    assert task.expire_seconds is not None
    assert task.expire_seconds <= 120  # a backlog of missed minutes does not pile up


def test_the_window_edge_row_stays_and_the_one_before_is_thinned(data):
    flush_retention(NOW)
    edge = {r for r in stored_rows() if r[2] == EDGE_VALUES}
    # the row at the cutoff is kept at full rate; the one a microsecond earlier is not the
    # first of its minute, so it is gone.
    assert edge == {(data[-1][0], to_us(CUTOFF), EDGE_VALUES)}


def test_repeated_and_advancing_runs_match_the_reference(data):
    flush_retention(NOW)
    again = flush_retention(NOW)
    assert again.ran
    assert (again.kept, again.removed, again.dropped) == (0, 0, [])
    assert stored_rows() == expected_after_flush(data, to_us(CUTOFF))

    later = NOW + timedelta(hours=5, minutes=3)
    flush_retention(later)
    cutoff = cutoff_for(later, int(WINDOW.total_seconds()), 60)
    assert stored_rows() == expected_after_flush(data, to_us(cutoff))


def test_a_flush_while_another_holds_the_lock_does_nothing(data):
    held = threading.Event()
    release = threading.Event()

    def hold_lock():
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_ID])
            held.set()
            release.wait(10)
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_ID])
        connections["default"].close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert held.wait(10)
        result = flush_retention(NOW)
    finally:
        release.set()
        holder.join(10)
    assert not result.ran
    assert stored_rows() == set(data)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_flushes_give_the_reference_rows(data):
    barrier = threading.Barrier(2)
    results = []

    def run():
        try:
            barrier.wait(10)
            results.append(flush_retention(NOW))
        finally:
            connections["default"].close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    expected = expected_after_flush(data, to_us(CUTOFF))
    assert stored_rows() == expected
    assert sum(r.removed for r in results if r.ran) == len(data) - len(expected)


@pytest.mark.django_db(transaction=True)
def test_a_flush_killed_mid_run_changes_nothing_and_the_rerun_completes(data):
    """Block the flush inside its transaction, kill it there, then run it again."""
    before = stored_rows()
    blocker = connections.create_connection("default")
    flush = None
    try:
        with blocker.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("LOCK TABLE monitoring_sample_p20261002 IN SHARE MODE")
            flush = subprocess.Popen(
                [sys.executable, "manage.py", "flush_retention", "--now", NOW.isoformat()],
                cwd=ROOT,
                env=worker_environment(MONITORING_FLUSH_LOCK_TIMEOUT_S="60"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            backend = wait_until(lambda: _waiting_flush_backend(flush), timeout=30)
            # By now the flush has dropped day 0 inside its transaction and waits on day 1.
            os.kill(flush.pid, signal.SIGKILL)
            flush.wait(10)
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
            cursor.execute("ROLLBACK")
    finally:
        blocker.close()
        if flush is not None and flush.poll() is None:
            flush.kill()
    wait_until(lambda: _waiting_flush_backend_gone(), timeout=20)
    assert stored_rows() == before
    assert "monitoring_sample_p20261001" in _partitions()

    call_command("flush_retention", "--now", NOW.isoformat())
    assert stored_rows() == expected_after_flush(data, to_us(CUTOFF))


def _waiting_flush_backend(flush: subprocess.Popen) -> int | None:
    """The flush's backend once it waits for a lock (asked outside the blocker's transaction:
    statistics views are frozen for the length of a transaction)."""
    if flush.poll() is not None:
        assert flush.stdout is not None  # piped
        pytest.fail(f"flush exited early: {flush.stdout.read().decode(errors='replace')}")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM monitoring_sample%%'"
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _waiting_flush_backend_gone() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'DELETE FROM monitoring_sample%%' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_the_beat_task_flushes_on_a_real_worker(data, celery_worker_process):
    from monitoring.tasks import flush_retention as flush_task

    flush_task.delay()
    state = wait_until(
        lambda: RetentionState.objects.filter(watermark__isnull=False).first(), timeout=60
    )
    assert state.watermark is not None
    assert state.watermark > CUTOFF  # the real clock: every generated row is past the window
    expected = expected_after_flush(data, to_us(state.watermark))
    assert stored_rows() == expected
    assert state.last_removed == len(data) - len(expected)
