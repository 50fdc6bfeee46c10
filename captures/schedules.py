"""The django-celery-beat schedule of a running operation: one PeriodicTask per operation.

Beat fires the trigger task every ``sample_interval_s`` at a fixed rate (the capture time
does not stretch the cycle, unlike PyPNM's sleep-then-capture loop). Saving or deleting a
PeriodicTask bumps beat's change counter, so beat picks the change up within its loop.
"""

from __future__ import annotations

import json

from celery import current_app
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from captures.models import MeasureMode

TRIGGER_TASK = "captures.tasks.trigger_capture"


def install(operation) -> PeriodicTask:
    every, _ = IntervalSchedule.objects.get_or_create(
        every=operation.sample_interval_s, period=IntervalSchedule.SECONDS
    )
    task, _ = PeriodicTask.objects.update_or_create(
        name=operation.schedule_name,
        defaults={
            "task": TRIGGER_TASK,
            "interval": every,
            "args": json.dumps([operation.pk]),
            "start_time": operation.started_at,
            # A tick that waited a whole interval in the queue is stale: drop it.
            "expire_seconds": operation.sample_interval_s,
            "enabled": True,
        },
    )
    return task


def run_once(operation, label: str = "") -> None:
    """A single capture has no schedule: its one tick is sent once the row is committed
    (the sweeper sends it again if it was lost: ``services.sweep``). ``label`` is the name
    Flower shows for the task (Celery's ``shadow``), e.g. the campaign it belongs to."""
    transaction.on_commit(
        lambda: current_app.send_task(TRIGGER_TASK, args=[operation.pk], shadow=label or None)
    )


def remove(operation) -> None:
    if operation.measure_mode == MeasureMode.SINGLE:
        return  # a single capture never had one (``run_once``): no query per capture
    for task in PeriodicTask.objects.filter(name=operation.schedule_name):
        task.delete()  # per instance, so beat's change counter is bumped


def installed_names() -> set[str]:
    """Names of the enabled operation schedules: one query for the sweeper's whole pass."""
    return set(
        PeriodicTask.objects.filter(task=TRIGGER_TASK, enabled=True).values_list("name", flat=True)
    )
