"""A real worker process, on the real Redis broker, writes its result to PostgreSQL."""

import pytest
from django.db import connection

from tests.helpers import worker_round_trip

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_database_is_postgresql():
    assert connection.vendor == "postgresql"


def test_task_round_trips_through_real_worker(celery_worker_process):
    assert worker_round_trip().startswith("test")
