"""Seed the retention flush as a periodic task, every minute (operators own it afterwards)."""

from django.db import migrations

from config.schedules import seed_interval_task, unseed_task

FLUSH_NAME = "monitoring: retention flush"
FLUSH_TASK = "monitoring.tasks.flush_retention"
FLUSH_EVERY_S = 60


def seed(apps, schema_editor):
    seed_interval_task(apps, FLUSH_NAME, FLUSH_TASK, FLUSH_EVERY_S, FLUSH_EVERY_S * 2)


def unseed(apps, schema_editor):
    unseed_task(apps, FLUSH_NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
