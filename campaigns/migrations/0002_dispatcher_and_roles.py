"""Seed the campaign dispatcher (every second) and give the existing roles the campaign
permissions (viewers read, operators and integrators start and stop, admin everything)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from accounts.roles import grant_new_app
from config.schedules import seed_interval_task, unseed_task

DISPATCHER_NAME = "campaigns: dispatch"
DISPATCHER_TASK = "campaigns.tasks.dispatch_campaigns"


def seed(apps, schema_editor):
    # Expires after 2 s: a pass that waited longer in the queue is superseded by the next.
    seed_interval_task(apps, DISPATCHER_NAME, DISPATCHER_TASK, 1, 2)


def grant(apps, schema_editor):
    app_config = apps.get_app_config("campaigns")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    grant_new_app(apps, "campaigns", using=schema_editor.connection.alias)


def unseed(apps, schema_editor):
    unseed_task(apps, DISPATCHER_NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0001_initial"),
        ("accounts", "0003_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(seed, unseed),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
