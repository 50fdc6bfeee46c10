"""Celery queue names and task routing, in one place.

Every project task declares its ``name=`` (stable when a module moves, so queued messages
are still run) and its ``queue=`` (one of ``Queue``). ``route_task`` is the whole routing
table: it sends a task to the queue it declares, also when the task is sent by name only
(beat, ``send_task``). Anything else (Celery's own tasks) goes to ``Queue.DEFAULT``.
Workers are started per queue family (see Procfile and docker/compose.yml).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Queue(StrEnum):
    DEFAULT = "default"
    SNMP = "snmp"  # PNM triggers and polls over SNMP
    SERIAL = "serial"  # seismograph transfers, one session per device
    INGEST = "ingest"  # staging received files
    MAINTENANCE = "maintenance"  # retention flush, sweepers


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, str] | None:
    """The ``task_routes`` router: the queue the task declares, if any."""
    if task is None:
        from celery import current_app

        if name not in current_app.tasks:
            # Sent by name from a process that never imported the task modules (the web
            # process starting a single capture): import them once, as a worker does.
            current_app.loader.import_default_modules()
        task = current_app.tasks.get(name)
    queue = getattr(task, "queue", None)
    return {"queue": str(queue)} if queue else None
