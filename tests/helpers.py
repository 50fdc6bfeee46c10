"""Helpers shared by test modules (fixtures live in the conftest files, helpers here)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest


def wait_until(
    predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def worker_round_trip(timeout: float = 30.0) -> str:
    """Run Celery's own ``celery.accumulate`` on the default queue and wait for its result
    in the PostgreSQL result backend: broker, worker and database agree. With one solo
    worker it also means every task queued before this call has been processed. Returns
    the name of the worker that ran it."""
    from celery.result import AsyncResult
    from django_celery_results.models import TaskResult

    from config.celery_app import app

    token = uuid.uuid4().hex
    result: AsyncResult = app.send_task("celery.accumulate", args=[token], ignore_result=False)
    assert result.get(timeout=timeout) == [token]
    return TaskResult.objects.get(task_id=result.id).worker or ""
