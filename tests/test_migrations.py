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


@pytest.mark.django_db(transaction=True)
def test_the_catalogue_migration_gives_existing_rows_their_tests():
    """captures 0006 → 0007: an operation's test from its family, a capture's from its
    transaction (an imported PyPNM record) or its operation, a channel row's from its
    operation; the channel-less row keeps no test."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("captures", "0006_inflight_tick")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    devices_now = executor.loader.graph.leaf_nodes("devices")  # devices stays migrated
    old = executor.loader.project_state(before + devices_now).apps
    modem = old.get_model("devices", "CableModem").objects.create(
        mac_address="02:00:5e:00:07:07", ip_address="127.0.0.1"
    )
    rows = {}
    for name in ("multi_rxmer", "multi_ds_channel_estimation"):
        group = old.get_model("captures", "CaptureGroup").objects.create()
        operation = old.get_model("captures", "Operation").objects.create(
            name=name,
            measure_mode="continuous",
            modem_id=modem.pk,
            capture_group_id=group.pk,
            duration_s=10,
            sample_interval_s=10,
        )
        tally = old.get_model("captures", "ChannelTally")
        tally.objects.create(operation_id=operation.pk, channel_id=193, planned=2)
        tally.objects.create(operation_id=operation.pk, channel_id=None, planned=1)
        capture = old.get_model("captures", "Capture")
        kwargs = {"if_index": 3, "triggered_at": "2026-01-01T00:00:00Z"}
        pending = capture.objects.create(
            operation_id=operation.pk,
            tick=1,
            channel_id=193,
            file_name=f"{name}-1.bin",
            deadline="2026-01-01T00:01:00Z",
            **kwargs,
        )
        imported = capture.objects.create(
            operation_id=operation.pk,
            tick=2,
            channel_id=193,
            file_name=f"{name}-2.bin",
            deadline="2026-01-01T00:01:00Z",
            state="stored",
            **kwargs,
        )
        old.get_model("captures", "Transaction").objects.create(
            capture_id=imported.pk,
            capture_group_id=group.pk,
            modem_id=modem.pk,
            timestamp="2026-01-01T00:00:00Z",
            mac_address=modem.mac_address,
            pnm_test_type="DS_HISTOGRAM",  # whatever the record says wins for its capture
            channel_id=193,
            filename=f"{name}-2.bin.zst",
            stored_path=f"x/{name}-2.bin.zst",
            size_before=1,
            size_after=1,
            sha256="0" * 64,
        )
        rows[name] = (operation.pk, pending.pk, imported.pk)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    from captures.models import Capture, ChannelTally, Operation

    for name, test in (
        ("multi_rxmer", "DS_OFDM_RXMER_PER_SUBCAR"),
        ("multi_ds_channel_estimation", "DS_OFDM_CHAN_EST_COEF"),
    ):
        operation_pk, pending_pk, imported_pk = rows[name]
        assert Operation.objects.get(pk=operation_pk).test == test
        assert Capture.objects.get(pk=pending_pk).test == test
        assert Capture.objects.get(pk=imported_pk).test == "DS_HISTOGRAM"
        slots = ChannelTally.objects.filter(operation_id=operation_pk)
        assert sorted((row.channel_id or 0, row.test) for row in slots) == [(0, ""), (193, test)]
