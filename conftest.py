"""Fixtures shared by every test package: a real Celery worker on the real Redis broker.

Tests that use the worker must use ``@pytest.mark.django_db(transaction=True)`` so the
worker (another process) sees the rows the test wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent
ALL_QUEUES = "default,snmp,serial,ingest,maintenance"
T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def _test_database_url() -> str:
    """The URL of the database pytest-django created, for processes the tests start."""
    db = connection.settings_dict
    parts = urlsplit(os.environ["DATABASE_URL"])
    netloc = parts.netloc
    return urlunsplit((parts.scheme, netloc, "/" + db["NAME"], parts.query, ""))


def worker_environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": _test_database_url(),
            "FIELDRELAY_STORAGE_ROOT": str(settings.FIELDRELAY_STORAGE_ROOT),
            "FIELDRELAY_SPOOL_DIR": str(settings.FIELDRELAY_SPOOL_DIR),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class WorkerProcess:
    """A ``celery worker`` subprocess; stopped (and reaped) by ``stop``."""

    def __init__(
        self, queues: str, name: str, log_path: Path, env: dict[str, str], pool: str = "solo"
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-P",
                pool,
                *(["-c", "4"] if pool == "threads" else []),
                "-Q",
                queues,
                "-n",
                name,
                "-l",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while "ready." not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready in {timeout} s:\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


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

    def start(queues: str = ALL_QUEUES, pool: str = "solo", **env: str) -> WorkerProcess:
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
                    channel.queue_purge(queue)  # type: ignore[attr-defined]  # transport's channel
                except Exception:  # noqa: S112 - a queue that never existed has nothing to purge
                    continue
