"""Redis or PostgreSQL going away in the middle of an operation: no file the receiver took
is lost, and the operation ends in a terminal state whose counters account for every
planned capture.

The worker, beat and the TFTP receiver are real processes (``own_pipeline``); the sweeper
runs in beat's schedule, as in production. Redis is a private server of the test (the
shared one must not restart); PostgreSQL is the shared server, whose test database stops
taking connections and loses every session of those processes for a while.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from django.db import connection

from captures.models import TERMINAL_STATES, Operation, Transaction
from captures.tests.helpers import assert_outage_survived
from captures.tests.test_pipeline import start
from simulators.modem import ModemFarm
from tests.factories import register_modem
from tests.helpers import stop_process, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test on 127.0.0.1, without persistence, that can be killed
    and started again, empty, on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        wait_until(lambda: self._answers(client), timeout=20)

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.proc is not None:
        stop_process(server.proc, 10)


def run_through(outage, receiver_port: int, tmp_path: Path) -> None:
    """One modem, one channel, a tick every 2 s for 30 s; ``outage()`` once 3 files are in."""
    farm = ModemFarm(1, tftp_port=receiver_port, measure_delay_s=0.2).start()
    try:
        operation = start(register_modem(farm[0]), duration_s=30, interval_s=2, channel_ids=[193])
        wait_until(lambda: Operation.objects.get(pk=operation.pk).collected >= 3, timeout=60)
        before = Transaction.objects.filter(capture__operation=operation).count()
        outage()
        done = wait_until(
            lambda: Operation.objects.filter(pk=operation.pk, state__in=TERMINAL_STATES).first(),
            timeout=150,
            interval=0.5,
        )
    finally:
        farm.stop()
    assert_outage_survived(done, farm[0], tmp_path / "spool")
    assert done.collected > before  # capturing went on after the outage


def test_redis_restarting_empty_mid_run_loses_no_received_file(
    private_redis, own_pipeline, tmp_path
):
    port = own_pipeline(
        REDIS_URL=private_redis.url, CELERY_BROKER_URL=private_redis.url, PNM_LEASE_TTL_S="3"
    )

    def restart_redis() -> None:
        private_redis.kill()  # queues, leases, expected uploads: all gone
        time.sleep(2)
        private_redis.start()

    run_through(restart_redis, port, tmp_path)


def test_postgresql_going_away_mid_run_loses_no_received_file(own_pipeline, tmp_path):
    port = own_pipeline(PNM_LEASE_TTL_S="3")
    database = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        ours = cursor.fetchone()[0]

    def cut_database() -> None:
        """What the pipeline sees of a restart: every session dropped, and for 3 s no
        new one (the test's own session stays, to watch)."""
        settings = connection.settings_dict
        with psycopg.connect(
            host=settings["HOST"],
            port=settings["PORT"] or 5432,
            user=settings["USER"],
            password=settings["PASSWORD"] or None,
            dbname="postgres",
            autocommit=True,
        ) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            try:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> %s",
                    (database, ours),
                )
                time.sleep(3)
            finally:
                admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')

    run_through(cut_database, port, tmp_path)
