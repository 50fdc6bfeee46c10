"""Operation bookkeeping without a worker: ticks, duplicates, storage errors, the sweeper."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from captures import services, staging, storage
from captures.models import CaptureState, Operation, OperationState, Transaction
from tests.factories import make_operation, uploaded_capture

pytestmark = pytest.mark.django_db


def test_a_tick_delivered_twice_is_claimed_once():
    operation = make_operation(duration_s=30, sample_interval_s=10)
    now = timezone.now()

    first = services.claim_tick(operation.pk, now + timedelta(seconds=10))
    duplicate = services.claim_tick(operation.pk, now + timedelta(seconds=11))
    following = services.claim_tick(operation.pk, now + timedelta(seconds=20))

    assert first is not None
    assert (first.number, first.final) == (1, False)
    assert duplicate is None
    assert following is not None
    assert following.number == 2


def test_the_tick_after_the_duration_is_the_final_one_and_drops_the_schedule():
    operation = make_operation(duration_s=30, sample_interval_s=10)
    assert operation.ends_at is not None
    final = services.claim_tick(operation.pk, operation.ends_at + timedelta(seconds=1))

    assert final is not None
    assert final.final
    assert final.number == operation.total_ticks == 4
    assert not PeriodicTask.objects.filter(name=operation.schedule_name).exists()
    assert services.claim_tick(operation.pk, operation.ends_at + timedelta(seconds=20)) is None
    assert services.final_tick_settled(operation.pk)  # no capture open: completed
    assert Operation.objects.get(pk=operation.pk).state == OperationState.COMPLETED


def test_duplicate_staging_records_one_transaction():
    operation = make_operation()
    capture, _ = uploaded_capture(operation)
    first = staging.stage_capture(capture.pk)
    assert first is not None
    # A duplicate that raced past the state check, still holding the spool file:
    spool_copy = storage.usable_spool_dir() / "duplicate.bin"
    spool_copy.write_bytes(b"PNN\x04")
    capture.refresh_from_db()
    type(capture).objects.filter(pk=capture.pk).update(
        state=CaptureState.UPLOADED, spool_path=str(spool_copy)
    )
    uploaded_capture_data = (storage.storage_root() / first.stored_path).read_bytes()

    second = staging.stage_capture(capture.pk)

    assert second is None
    assert Transaction.objects.filter(capture=capture).count() == 1
    assert Operation.objects.get(pk=operation.pk).collected == 1
    assert (storage.storage_root() / first.stored_path).read_bytes() == uploaded_capture_data


def test_wrong_test_type_in_header_fails_the_capture():
    operation = make_operation(name="multi_ds_channel_estimation", measure_mode="standard")
    capture, _ = uploaded_capture(operation)  # an RxMER file for a ChanEst operation

    assert staging.stage_capture(capture.pk) is None

    capture.refresh_from_db()
    assert capture.state == CaptureState.FAILED
    assert "expected DS_OFDM_CHAN_EST_COEF" in capture.error
    assert Operation.objects.get(pk=operation.pk).failed == 1


def test_storage_error_is_clear_and_spool_file_kept(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the storage root should be")
    settings.FIELDRELAY_STORAGE_ROOT = blocker
    operation = make_operation()
    capture, data = uploaded_capture(operation)

    with pytest.raises(storage.StorageUnavailable, match=r"storage root .* is not writable"):
        staging.stage_capture(capture.pk)

    capture.refresh_from_db()
    assert capture.state == CaptureState.UPLOADED
    assert Path(capture.spool_path).read_bytes() == data
    settings.FIELDRELAY_STORAGE_ROOT = tmp_path / "storage"
    with django_capture_on_commit_callbacks(execute=True):
        assert staging.stage_capture(capture.pk) is not None  # the retry succeeds
    assert not os.path.exists(capture.spool_path)


def test_unwritable_spool_falls_back_to_a_user_dir(settings, tmp_path, caplog):
    blocker = tmp_path / "spool-file"
    blocker.write_text("x")
    settings.FIELDRELAY_SPOOL_DIR = blocker / "spool"

    spool = storage.usable_spool_dir()

    assert spool.name == f"spool-{os.getuid()}"
    assert "NOT WRITABLE" in caplog.text


def test_sweeper_restores_a_lost_schedule_and_expires_overdue_captures():
    operation = make_operation(duration_s=600, sample_interval_s=10)
    PeriodicTask.objects.filter(name=operation.schedule_name).delete()
    uploaded_capture(operation)
    pending = services.create_capture(operation, 2, 194, 4, "late.bin")
    assert pending is not None
    type(pending).objects.filter(pk=pending.pk).update(deadline=timezone.now())

    result = services.sweep()

    assert result.rescheduled == 1
    assert PeriodicTask.objects.filter(name=operation.schedule_name).exists()
    assert result.expired == 1
    pending.refresh_from_db()
    assert pending.state == CaptureState.FAILED
    assert Operation.objects.get(pk=operation.pk).last_error.endswith("by its deadline")
    assert result.restage == []  # the uploaded one is not overdue yet


def test_sweeper_runs_a_lost_final_tick():
    operation = make_operation(duration_s=20, sample_interval_s=10)
    Operation.objects.filter(pk=operation.pk).update(ends_at=timezone.now() - timedelta(seconds=60))
    assert services.sweep().late_final == [operation.pk]


def test_failures_in_a_row_fail_the_operation(settings):
    settings.PNM_MAX_CONSECUTIVE_FAILURES = 2
    operation = make_operation()
    services.tick_failed(operation.pk, "modem did not answer")
    assert Operation.objects.get(pk=operation.pk).state == OperationState.RUNNING

    services.tick_failed(operation.pk, "modem did not answer")

    failed = Operation.objects.get(pk=operation.pk)
    assert failed.state == OperationState.FAILED
    assert failed.last_error == "modem did not answer (2 failures in a row)"
    assert not PeriodicTask.objects.filter(name=operation.schedule_name).exists()


def test_two_ticks_in_one_second_get_distinct_file_names():
    operation = make_operation()

    def name(offset: int) -> str:
        return f"ds_ofdm_rxmer_per_subcar_020000000000_193_{1_700_000_000 + offset}.bin"

    first = services.create_capture(operation, 1, 193, 3, name)
    second = services.create_capture(operation, 2, 193, 3, name)
    again = services.create_capture(operation, 2, 193, 3, name)

    assert first is not None
    assert second is not None
    assert first.file_name.endswith("_1700000000.bin")
    assert second.file_name.endswith("_1700000001.bin")
    assert again is None  # the same (tick, channel) twice: no second row
