"""Seed the PNM sweeper as a default periodic task.

get_or_create, never update: an operator's edit of the schedule in the admin survives
every later migrate and beat restart (CELERY_BEAT_SCHEDULE would overwrite it).
"""

from django.db import migrations

from config.schedules import seed_interval_task, unseed_task

SWEEPER_NAME = "captures: sweep operations"
SWEEPER_TASK = "captures.tasks.sweep_operations"
SWEEPER_EVERY_S = 10


def seed(apps, schema_editor):
    seed_interval_task(apps, SWEEPER_NAME, SWEEPER_TASK, SWEEPER_EVERY_S, SWEEPER_EVERY_S * 3)


def unseed(apps, schema_editor):
    unseed_task(apps, SWEEPER_NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("captures", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
