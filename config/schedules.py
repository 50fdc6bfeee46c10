"""Default periodic tasks, seeded once so that operators own them afterwards.

Data migrations call ``seed_interval_task``: it creates the task when missing and never
updates an existing one, so an edit made in the admin survives every later migrate and beat
restart (entries in CELERY_BEAT_SCHEDULE would be overwritten at each beat start instead).
"""

from __future__ import annotations

from django.apps.registry import Apps


def seed_interval_task(
    apps: Apps, name: str, task: str, every_s: int, expire_s: int | None = None
) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = interval_model.objects.get_or_create(every=every_s, period="seconds")
    task_model.objects.get_or_create(
        name=name, defaults={"task": task, "interval": every, "expire_seconds": expire_s}
    )


def unseed_task(apps: Apps, name: str) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=name).delete()
