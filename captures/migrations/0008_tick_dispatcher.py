"""One tick dispatcher instead of a beat entry per operation: ``Operation.next_tick_at``
(indexed for running operations), the dispatcher's beat entry (every second), and the
running operations moved over (their next tick time set, their own beat entries dropped)."""

from datetime import timedelta

from django.db import migrations, models

from config.schedules import seed_interval_task, unseed_task

DISPATCHER_NAME = "captures: dispatch ticks"
DISPATCHER_TASK = "captures.tasks.dispatch_ticks"


def seed(apps, schema_editor):
    # Expires after 2 s: a pass that waited longer in the queue is superseded by the next.
    seed_interval_task(apps, DISPATCHER_NAME, DISPATCHER_TASK, 1, 2)


def move_running(apps, schema_editor):
    operation_model = apps.get_model("captures", "Operation")
    running = operation_model.objects.filter(state="running").exclude(measure_mode="single")
    for operation in running.exclude(started_at=None).exclude(ends_at=None):
        total = operation.duration_s // operation.sample_interval_s + 1
        following = operation.last_tick + 1
        if following > total:
            continue  # its final tick was claimed already
        if following >= total:
            due = operation.ends_at
        else:
            due = operation.started_at + timedelta(
                seconds=(following - 1) * operation.sample_interval_s
            )
        operation_model.objects.filter(pk=operation.pk).update(next_tick_at=due)
    periodic = apps.get_model("django_celery_beat", "PeriodicTask")
    periodic.objects.filter(name__startswith="pnm-operation-").delete()


def unseed(apps, schema_editor):
    unseed_task(apps, DISPATCHER_NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("captures", "0007_catalogue"),
        ("devices", "0004_modem_registry"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="operation",
            name="next_tick_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="operation",
            index=models.Index(
                condition=models.Q(("state", "running")),
                fields=["next_tick_at"],
                name="operation_due_ticks",
            ),
        ),
        migrations.RunPython(seed, unseed),
        migrations.RunPython(move_running, migrations.RunPython.noop),
    ]
