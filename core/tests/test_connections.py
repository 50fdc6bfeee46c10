"""hand_back keeps a connection the work still needs (the pooled case: test_pipeline_pool)."""

from __future__ import annotations

import time

import pytest
from django.db import connection, transaction

from core import connections


def _open_connection():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.connection


@pytest.mark.django_db
def test_a_connection_inside_a_transaction_stays():
    with transaction.atomic():
        held = _open_connection()
        connections.hand_back()
        assert connection.connection is held
        assert not connection.needs_rollback


@pytest.mark.django_db(transaction=True)
def test_without_a_pool_the_connection_stays_for_the_next_step():
    assert "pool" not in connection.settings_dict["OPTIONS"]  # the test settings drop it
    held = _open_connection()
    connection.close_at = time.monotonic()  # expired, as CONN_MAX_AGE 0 makes it at once
    connections.hand_back()
    assert connection.connection is held
