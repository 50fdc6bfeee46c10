"""Models and migrations agree: a model change without its migration fails here."""

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_seismographs_move_apps_keeping_rows_tables_and_permissions():
    """devices 0002 → seismographs 0001 + devices 0003: state only; the rows, the table
    names and the erase permission (through its content type) come along."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("devices", "0002_seismographs")]
    executor = MigrationExecutor(connection)
    executor.migrate([*before, ("seismographs", None)])  # None: unapply the whole app
    graph = executor.loader.graph
    old = executor.loader.project_state(
        before + graph.leaf_nodes("auth") + graph.leaf_nodes("contenttypes")
    ).apps
    unit = old.get_model("devices", "Seismograph").objects.create(conn_key="tcp:127.0.0.1:1")
    old.get_model("devices", "SeismoEvent").objects.create(
        device_id=unit.pk, waveform_key="0A", timestamp="2026-01-01T00:00:00Z", header={}
    )
    content_type = old.get_model("contenttypes", "ContentType").objects.get_or_create(
        app_label="devices", model="seismograph"
    )[0]
    old.get_model("auth", "Permission").objects.get_or_create(
        codename="erase_seismograph", content_type=content_type, defaults={"name": "erase"}
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    from django.contrib.auth.models import Permission

    from seismographs.models import SeismoEvent, Seismograph

    assert Seismograph._meta.db_table == "devices_seismograph"
    assert Seismograph.objects.get(pk=unit.pk).conn_key == "tcp:127.0.0.1:1"
    assert SeismoEvent.objects.get(device_id=unit.pk).waveform_key == "0A"
    permission = Permission.objects.get(codename="erase_seismograph")
    assert permission.content_type.app_label == "seismographs"
