"""The connection budget: a worker process on the threads pool uses at most
DB_POOL_MAX_SIZE PostgreSQL connections whatever its thread count, and without the pool the
same load takes one per busy thread (the anchor that shows the test can fail)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import connection

from config.tests.budget_tasks import hold_connection

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TASKS, HOLD_S, THREADS = 48, 0.3, 16


def connections_of(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        )
        return int(cursor.fetchone()[0])


def peak_connections(start_worker, pool_size: str) -> tuple[int, set[int]]:
    """Run TASKS connection-holding tasks on a 16-thread worker; the most server
    connections its process had at once, and the backends that served the tasks."""
    role = f"budget-{uuid.uuid4().hex[:8]}"
    worker = start_worker(
        "default",
        pool="threads",
        concurrency=THREADS,
        include="config.tests.budget_tasks",
        DB_POOL_MAX_SIZE=pool_size,
        FIELDRELAY_ROLE=role,
    )
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, connections_of(f"fieldrelay-{role}"))
            time.sleep(0.02)
        connection.close()  # this thread's own

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        results = [hold_connection.delay(HOLD_S) for _ in range(TASKS)]
        backends = {result.get(timeout=120) for result in results}
    finally:
        done.set()
        sampler.join(10)
        worker.stop()  # the next run's tasks must go to its own worker
    return peak, backends


def test_a_threads_worker_stays_within_its_pool(start_worker):
    peak, backends = peak_connections(start_worker, "4")

    assert 2 <= peak <= 4
    assert len(backends) <= 4  # every task ran on one of the pool's connections


def test_without_the_pool_each_busy_thread_takes_a_connection(start_worker):
    peak, backends = peak_connections(start_worker, "0")

    assert peak > 4
    assert len(backends) > 4
