"""Seed the PNM sweeper as a default periodic task.

get_or_create, never update: an operator's edit of the schedule in the admin survives
every later migrate and beat restart (CELERY_BEAT_SCHEDULE would overwrite it).
"""

from django.db import migrations

SWEEPER_NAME = "captures: sweep operations"
SWEEPER_TASK = "captures.tasks.sweep_operations"
SWEEPER_EVERY_S = 10


def seed(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = interval_model.objects.get_or_create(every=SWEEPER_EVERY_S, period="seconds")
    task_model.objects.get_or_create(
        name=SWEEPER_NAME,
        defaults={"task": SWEEPER_TASK, "interval": every, "expire_seconds": SWEEPER_EVERY_S * 3},
    )


def unseed(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SWEEPER_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("captures", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
