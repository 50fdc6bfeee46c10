"""A task that holds a database connection for a while, for the connection budget test
(loaded into its worker with ``-I``; no production worker imports it)."""

from __future__ import annotations

from celery import shared_task
from django.db import connection

from config.queues import Queue


@shared_task(name="tests.hold_connection", queue=Queue.DEFAULT, ignore_result=False)
def hold_connection(seconds: float) -> int:
    """Keep one server connection busy for ``seconds``; returns the backend's pid."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_sleep(%s)", [seconds])
        return int(cursor.fetchone()[0])
