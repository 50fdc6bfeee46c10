"""WorkerPing was written only by tests; they now round-trip Celery's own
``celery.accumulate`` through the PostgreSQL result backend instead."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("config", "0001_initial"),
    ]

    operations = [
        migrations.DeleteModel(name="WorkerPing"),
    ]
