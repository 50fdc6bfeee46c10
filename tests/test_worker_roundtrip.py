"""A real worker process, on the real Redis broker, writes a row to PostgreSQL."""

import uuid

import pytest
from django.db import connection

from config.models import WorkerPing
from config.tasks import record_worker_ping
from conftest import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_database_is_postgresql():
    assert connection.vendor == "postgresql"


def test_task_round_trips_through_real_worker(celery_worker_process):
    token = uuid.uuid4().hex
    record_worker_ping.delay(token)
    ping = wait_until(lambda: WorkerPing.objects.filter(token=token).first(), timeout=30)
    assert ping.hostname.startswith("test")


def test_duplicate_delivery_keeps_one_row(celery_worker_process):
    token = uuid.uuid4().hex
    record_worker_ping.delay(token)
    record_worker_ping.delay(token)
    wait_until(lambda: WorkerPing.objects.filter(token=token).exists(), timeout=30)
    # A marker task queued after both proves both duplicates have been processed.
    marker = uuid.uuid4().hex
    record_worker_ping.delay(marker)
    wait_until(lambda: WorkerPing.objects.filter(token=marker).exists(), timeout=30)
    assert WorkerPing.objects.filter(token=token).count() == 1
