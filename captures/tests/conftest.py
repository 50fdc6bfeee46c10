"""Fixtures for the PNM pipeline: simulated modems, the TFTP receiver, beat, a worker.

The modems (real SNMP agents) and the receiver run as threads of the test process, over
127.0.0.1; the worker and beat are real processes against the test database and Redis.
"""

from __future__ import annotations

import gc
import importlib
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.apps import apps as django_apps

from captures import arrivals
from captures.receiving import build_receiver
from captures.tests.helpers import WORKER_ENV
from devices.links.tftp import TftpReceiver
from simulators.modem import ModemFarm
from tests.helpers import ROOT, WorkerProcess, stop_process, wait_until, worker_environment


@pytest.fixture
def announcing(settings) -> None:
    """The receiver (a thread of this process) announces what it receives, for threads
    workers that wait for their files (``captures.arrivals``)."""
    settings.PNM_ARRIVAL_WAIT_S = 1.0
    assert arrivals.enabled()


@pytest.fixture(scope="module")
def pnm_worker(start_worker) -> WorkerProcess:
    """A worker on every queue with the fast PNM timings."""
    return start_worker(**WORKER_ENV)


def start_beat(folder: Path, env: dict[str, str]) -> subprocess.Popen:
    """celery beat with our database scheduler (config.beat), checking for changes every
    second, logging to ``folder/beat.log``; returns once it runs. The tick dispatcher's
    entry is seeded first (an earlier transactional test's flush took the migration's)."""
    seed_dispatcher()
    log_path = folder / "beat.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--max-interval",
                "1",
                "--pidfile=",
                "-s",
                str(folder / "beat-schedule"),
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # Operations started before beat runs would have their first ticks late (missed).
        wait_until(lambda: "beat: Starting..." in log_path.read_text(errors="replace"), 60)
    except BaseException:
        stop_process(proc, 10)
        raise
    return proc


@pytest.fixture
def beat(tmp_path: Path) -> Iterator[subprocess.Popen]:
    proc = start_beat(tmp_path, worker_environment())
    yield proc
    stop_process(proc, 10)


def seed_sweeper() -> None:
    """The sweeper's periodic task, as ``captures`` migration 0002 seeds it."""
    seeding = importlib.import_module("captures.migrations.0002_sweeper_schedule")
    seeding.seed(django_apps, None)


def seed_dispatcher() -> None:
    """The tick dispatcher's periodic task, as ``captures`` migration 0008 seeds it."""
    seeding = importlib.import_module("captures.migrations.0008_tick_dispatcher")
    seeding.seed(django_apps, None)


@pytest.fixture
def own_pipeline(start_worker, tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Factory: a worker, beat and ``manage.py tftp_receiver`` as processes of their own,
    with ``env`` on top of the fast PNM timings and a spool in ``tmp_path/spool``, for
    tests that take a service away from under them. Returns the receiver's port."""
    processes: list[subprocess.Popen] = []

    def start(**env: str) -> int:
        env = {**WORKER_ENV, "FIELDRELAY_SPOOL_DIR": str(tmp_path / "spool"), **env}
        seed_sweeper()  # an earlier transactional test's flush took the migration's row
        processes.append(start_worker(**env).proc)
        processes.append(start_beat(tmp_path, worker_environment(**env)))
        log_path = tmp_path / "tftp.log"
        with log_path.open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "manage.py",
                        "tftp_receiver",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        "0",
                    ],
                    cwd=ROOT,
                    env=worker_environment(**env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        listening = wait_until(
            lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", log_path.read_text()), 30
        )
        return int(listening.group(1))

    yield start
    for proc in processes:
        stop_process(proc, 10)


@pytest.fixture
def receiver(tmp_path: Path, settings) -> Iterator[TftpReceiver]:
    """The TFTP receiver on a free port, in a thread, with its own spool dir."""
    settings.FIELDRELAY_SPOOL_DIR = tmp_path / "spool"
    tftp = build_receiver(host="127.0.0.1", port=0)
    thread = threading.Thread(target=tftp.run, name="tftp-receiver", daemon=True)
    thread.start()
    tftp.bound_port  # noqa: B018 - waits until it listens
    yield tftp
    tftp.stop()
    thread.join(15)
    gc.collect()  # its threads' database connections close with them


@pytest.fixture
def farm(receiver: TftpReceiver) -> Iterator[Callable[..., ModemFarm]]:
    """Factory: ``farm(count, failures={index: Failure})`` uploading to ``receiver``."""
    farms: list[ModemFarm] = []

    def make(count: int = 1, **options) -> ModemFarm:
        options.setdefault("measure_delay_s", 0.2)
        started = ModemFarm(count, tftp_port=receiver.bound_port, **options).start()
        farms.append(started)
        return started

    yield make
    for started in farms:
        started.stop()
