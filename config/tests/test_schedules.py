"""Seeded schedules belong to the operators once they exist."""

import pytest
from django.apps import apps
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.schedules import seed_interval_task, unseed_task

pytestmark = pytest.mark.django_db


def test_seed_creates_then_never_overwrites_an_operator_edit():
    seed_interval_task(apps, "test: job", "monitoring.tasks.flush_retention", 60, expire_s=90)
    task = PeriodicTask.objects.get(name="test: job")
    assert task.interval is not None
    assert (task.interval.every, task.expire_seconds) == (60, 90)

    task.interval, _ = IntervalSchedule.objects.get_or_create(every=300, period="seconds")
    task.enabled = False
    task.save()
    seed_interval_task(apps, "test: job", "monitoring.tasks.flush_retention", 60, expire_s=90)

    task.refresh_from_db()
    assert (task.interval.every, task.enabled) == (300, False)
    unseed_task(apps, "test: job")
    assert not PeriodicTask.objects.filter(name="test: job").exists()


def test_default_schedules_are_seeded_by_migrations():
    names = set(PeriodicTask.objects.values_list("task", flat=True))
    assert {"captures.tasks.sweep_operations", "monitoring.tasks.flush_retention"} <= names
