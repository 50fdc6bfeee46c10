"""Fixtures shared by every test package: a real Celery worker on the real Redis broker,
and one authenticated API client per role.

Tests that use the worker must use ``@pytest.mark.django_db(transaction=True)`` so the
worker (another process) sees the rows the test wrote. Plain helpers are in
tests/helpers.py and tests/factories.py: test modules import those, never a conftest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from django.conf import settings

from tests.helpers import ALL_QUEUES, WorkerProcess, role_user, token_client, worker_environment

if TYPE_CHECKING:
    from rest_framework.test import APIClient


@pytest.fixture
def viewer_client(db) -> APIClient:
    """The API as a viewer (reads everything but credentials), with a token of every scope."""
    return token_client(role_user("viewer-user", "viewer"))


@pytest.fixture
def operator_client(db) -> APIClient:
    """The API as an operator (starts/stops captures, writes to devices), token of every scope."""
    return token_client(role_user("operator-user", "operator"))


@pytest.fixture
def integrator_client(db) -> APIClient:
    """The API as an integrator with a read + ingest token (what a collector holds)."""
    return token_client(role_user("integrator-user", "integrator"), scopes=("read", "ingest"))


@pytest.fixture
def admin_api_client(db) -> APIClient:
    """The API as a member of the admin role (every permission), token of every scope."""
    return token_client(role_user("admin-user", "admin"))


@pytest.fixture(scope="session", autouse=True)
def _fresh_cache() -> None:
    """Locks, poll claims and arrival notes are keyed by row ids, which restart with the
    test database: keys a previous run left in Redis (alive up to minutes) would collide."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def _isolated_file_roots(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Received files and spool of the test run go to a temporary folder."""
    base = tmp_path_factory.mktemp("fieldrelay-files")
    settings.FIELDRELAY_STORAGE_ROOT = base / "storage"
    settings.FIELDRELAY_SPOOL_DIR = base / "spool"


@pytest.fixture(scope="module")
def start_worker(
    django_db_setup, django_db_blocker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory for real worker processes against the test database and Redis broker.

    Workers belong to the test module that started them and stop when it ends: a worker
    left running with another module's settings would take that module's tasks.
    """
    started: list[WorkerProcess] = []
    logs = tmp_path_factory.mktemp("worker-logs")

    def start(
        queues: str = ALL_QUEUES,
        pool: str = "solo",
        *,
        concurrency: int = 4,
        include: str = "",
        **env: str,
    ) -> WorkerProcess:
        if not started:
            _purge_broker()  # nothing left over from an earlier module
        name = f"test{len(started)}-{os.getpid()}@%h"
        with django_db_blocker.unblock():
            worker = WorkerProcess(
                queues,
                name,
                logs / f"worker{len(started)}.log",
                worker_environment(**env),
                pool=pool,
                concurrency=concurrency,
                include=include,
            )
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def celery_worker_process(start_worker) -> WorkerProcess:
    """One worker on every queue with the default settings, for one test module."""
    return start_worker()


def _purge_broker() -> None:
    """Drop messages a previous, interrupted run left in the test broker."""
    from config.celery_app import app

    with app.connection_for_write() as conn:
        for queue in ALL_QUEUES.split(","):
            with conn.channel() as channel:
                try:
                    channel.queue_purge(queue)  # type: ignore[attr-defined]  # kombu's Channel
                except Exception:  # noqa: S112 - a queue that never existed has nothing to purge
                    continue
