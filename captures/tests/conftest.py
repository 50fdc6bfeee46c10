"""Fixtures for the PNM pipeline: simulated modems, the TFTP receiver, beat, a worker.

The modems (real SNMP agents) and the receiver run as threads of the test process, over
127.0.0.1; the worker and beat are real processes against the test database and Redis.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from captures.receiving import build_receiver
from captures.tests.helpers import WORKER_ENV
from devices.links.tftp import TftpReceiver
from simulators.modem import ModemFarm
from tests.helpers import ROOT, WorkerProcess, stop_process, wait_until, worker_environment


@pytest.fixture(scope="module")
def pnm_worker(start_worker) -> WorkerProcess:
    """A worker on every queue with the fast PNM timings."""
    return start_worker(**WORKER_ENV)


@pytest.fixture
def beat(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """celery beat with our database scheduler (config.beat), checking for changes every
    second."""
    log = (tmp_path / "beat.log").open("wb")
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
            str(tmp_path / "beat-schedule"),
            "-l",
            "INFO",
        ],
        cwd=ROOT,
        env=worker_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    # Operations started before beat runs would have their first ticks late (missed).
    log_path = tmp_path / "beat.log"
    wait_until(lambda: "beat: Starting..." in log_path.read_text(errors="replace"), timeout=60)
    yield proc
    stop_process(proc, 10)
    log.close()


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
