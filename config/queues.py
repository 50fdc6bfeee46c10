"""Celery queue names and task routes, in one place.

Workers are started per queue family (see Procfile and docker/compose.yml); tasks are
routed by the name of the task, which is ``<app>.tasks.<function>``.
"""

from __future__ import annotations

from enum import StrEnum


class Queue(StrEnum):
    DEFAULT = "default"
    SNMP = "snmp"  # PNM triggers over SNMP
    SERIAL = "serial"  # seismograph transfers, one session per device
    INGEST = "ingest"  # staging received files, writing sample batches
    MAINTENANCE = "maintenance"  # retention flush, sweepers


# Glob patterns over task names, first match wins.
TASK_ROUTES: list[tuple[str, Queue]] = [
    ("captures.tasks.trigger_*", Queue.SNMP),
    ("captures.tasks.stage_*", Queue.INGEST),
    ("captures.tasks.sweep_*", Queue.MAINTENANCE),
    ("devices.tasks.*", Queue.SERIAL),
    ("monitoring.tasks.ingest_*", Queue.INGEST),
    ("monitoring.tasks.*", Queue.MAINTENANCE),
    ("config.tasks.*", Queue.DEFAULT),
]


def celery_task_routes() -> list[dict[str, dict[str, str]]]:
    """The ``task_routes`` setting: one glob map, order preserved."""
    return [{pattern: {"queue": queue.value} for pattern, queue in TASK_ROUTES}]
