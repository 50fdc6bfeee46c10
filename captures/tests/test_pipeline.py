"""End to end: beat -> worker (SNMP to simulated modems) -> TFTP receiver -> staging.

Real SNMP and TFTP over 127.0.0.1, a real worker and beat, PostgreSQL and Redis.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict

import pytest
import zstandard
from django_celery_beat.models import PeriodicTask

from captures import services, storage, triggering
from captures.models import (
    TERMINAL_STATES,
    CaptureState,
    Operation,
    OperationState,
    Transaction,
)
from core import locks
from simulators.modem import Failure
from tests.factories import register_modem
from tests.helpers import wait_until, worker_round_trip

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def start(
    modem, duration_s: int = 2, interval_s: int = 1, name: str = "multi_rxmer", channel_ids=None
) -> Operation:
    mode = "continuous" if name == "multi_rxmer" else "standard"
    return services.start_operation(
        modem=modem,
        name=name,
        measure_mode=mode,
        duration_s=duration_s,
        sample_interval_s=interval_s,
        channel_ids=channel_ids,
    )


def finished(operation: Operation, timeout: float = 60) -> Operation:
    """Wait for a terminal state; the sweeper is run here as beat would every 10 s."""

    def poll():
        services.sweep()
        return Operation.objects.filter(pk=operation.pk, state__in=TERMINAL_STATES).first()

    return wait_until(poll, timeout=timeout, interval=0.2)


def worker_drained() -> None:
    """Returns once the worker has processed everything queued before this call."""
    worker_round_trip()


def test_operation_runs_to_completion(pnm_worker, beat, farm, operator_client):
    sim = farm(1)
    operation = start(register_modem(sim[0]))

    done = finished(operation)

    assert done.state == OperationState.COMPLETED, done.last_error
    records = list(Transaction.objects.filter(capture__operation=done).order_by("id"))
    assert len(records) >= 2  # two OFDM channels per tick, at least the final tick
    assert done.collected == len(records) == done.expected
    assert done.failed == 0
    assert done.time_remaining == 0
    assert not PeriodicTask.objects.filter(name=done.schedule_name).exists()
    uploaded = {upload.sha256: upload for upload in sim[0].uploads}
    for record in records:
        raw = (storage.storage_root() / record.stored_path).read_bytes()
        data = zstandard.ZstdDecompressor().decompress(raw)
        assert hashlib.sha256(data).hexdigest() == record.sha256
        assert record.sha256 in uploaded
        assert record.size_before == len(data)
        assert record.size_after == len(raw)
        assert record.filename.startswith("ds_ofdm_rxmer_per_subcar_02005e000000_")
        assert record.filename.endswith(".bin.zst")
        assert record.device_details["system_description"]["MODEL"] == "SIM-CM31"
    assert {record.channel_id for record in records} == {193, 194}
    assert done.metadata["system_description"]["VENDOR"] == "FieldRelay Sim"
    assert not list(storage.usable_spool_dir().glob("*.bin"))  # spool emptied

    status = operator_client.get(f"/api/v1/captures/operations/{done.operation_id}/status/").json()
    assert status["state"] == "completed"
    assert status["collected"] == len(records)
    assert status["time_remaining"] == 0
    assert status["updated"] == int(done.updated.timestamp())


def test_channel_estimation_over_snmpv3(pnm_worker, beat, farm):
    sim = farm(1)
    operation = start(register_modem(sim[0], v3=True), name="multi_ds_channel_estimation")

    done = finished(operation)

    assert done.state == OperationState.COMPLETED, done.last_error
    records = Transaction.objects.filter(modem=done.modem)
    assert set(records.values_list("pnm_test_type", flat=True)) == {"DS_OFDM_CHAN_EST_COEF"}
    assert done.collected == done.expected >= 2


def test_stop_midway(pnm_worker, beat, farm, operator_client):
    sim = farm(1)
    operation = start(register_modem(sim[0]), duration_s=60, interval_s=1)
    wait_until(lambda: Operation.objects.get(pk=operation.pk).collected >= 2, timeout=30)

    response = operator_client.post(f"/api/v1/captures/operations/{operation.operation_id}/stop/")

    assert response.status_code == 200
    assert response.json()["state"] == "stopped"
    assert not PeriodicTask.objects.filter(name=operation.schedule_name).exists()
    stopped = Operation.objects.get(pk=operation.pk)
    assert 0 < stopped.time_remaining < 60
    captures_before = stopped.captures.count()
    # A tick already on its way when we stopped is refused by the state check.
    from captures.tasks import trigger_capture

    trigger_capture.delay(operation.pk)
    worker_drained()
    after = Operation.objects.get(pk=operation.pk)
    assert after.captures.count() == captures_before
    assert after.state == OperationState.STOPPED
    assert after.collected == stopped.collected
    assert not after.captures.filter(state__in=[CaptureState.PENDING, CaptureState.UPLOADED])


@pytest.mark.parametrize(
    ("failure", "state", "error"),
    [
        (Failure.TIMEOUT, OperationState.FAILED, "did not answer SNMP"),
        (Failure.WRONG_COMMUNITY, OperationState.FAILED, "did not answer SNMP"),
        (Failure.NO_UPLOAD, OperationState.FAILED, "not received by its deadline"),
        (Failure.TRUNCATED_UPLOAD, OperationState.FAILED, "transfer aborted"),
        (Failure.STALE_SAMPLE_READY, OperationState.COMPLETED, ""),
        (Failure.IGNORE_FILE_NAME, OperationState.COMPLETED, ""),
    ],
)
def test_failure_knobs(pnm_worker, beat, farm, failure, state, error):
    sim = farm(1, failures={0: failure}, measure_delay_s=0.5)
    # Two channels measured 0.5 s apart: with IGNORE_FILE_NAME both files often carry the
    # same MIB default name (MAC + second); each must still land on its own capture.
    operation = start(register_modem(sim[0]), duration_s=2, interval_s=1)

    done = finished(operation, timeout=90)

    assert done.state == state, done.last_error
    assert error in done.last_error
    if state == OperationState.COMPLETED:
        assert done.collected == done.expected >= 2
        records = Transaction.objects.filter(capture__operation=done)
        names = records.values_list("filename", flat=True)
        assert all(name.startswith("ds_ofdm_rxmer_per_subcar_") for name in names)
    else:
        assert done.collected == 0
        assert not PeriodicTask.objects.filter(name=done.schedule_name).exists()


def test_duplicate_staging_records_one_transaction(pnm_worker, beat, farm):
    sim = farm(1)
    operation = start(register_modem(sim[0]))
    done = finished(operation)
    capture = done.captures.filter(state=CaptureState.STORED).first()
    assert capture is not None
    from captures.tasks import stage_capture, trigger_capture

    # Redeliver the staging of a stored capture, and a tick of a finished operation.
    stage_capture.delay(capture.pk)
    stage_capture.delay(capture.pk)
    trigger_capture.delay(done.pk)
    worker_drained()

    assert Transaction.objects.filter(capture=capture).count() == 1
    assert Operation.objects.get(pk=done.pk).collected == done.collected


def test_a_tick_delivered_twice_triggers_and_records_once(pnm_worker, farm):
    sim = farm(1)
    operation = start(register_modem(sim[0]), duration_s=600, interval_s=60)  # no beat running
    from captures.tasks import trigger_capture

    trigger_capture.delay(operation.pk)
    trigger_capture.delay(operation.pk)  # the same tick, delivered again
    worker_drained()
    wait_until(lambda: Operation.objects.get(pk=operation.pk).collected == 2, timeout=30)
    worker_drained()

    assert sim[0].triggers == 2  # one per channel, not four
    assert operation.captures.count() == 2
    assert Transaction.objects.filter(capture__operation=operation).count() == 2
    assert Operation.objects.get(pk=operation.pk).collected == 2


def test_a_poll_delivered_twice_runs_once(pnm_worker, farm):
    sim = farm(1)
    operation = start(register_modem(sim[0]), duration_s=600, interval_s=60)  # no beat running
    from captures.tasks import trigger_poll

    # The tick's setup and first trigger, and its first poll twice, here; the rest of the
    # chain runs on the worker.
    tick = services.claim_tick(operation.pk)
    assert tick is not None
    started = triggering.run_tick(tick)
    assert started is not None
    measurement = asdict(started)
    assert trigger_poll.apply(args=(measurement,)).get() == "polling"
    assert trigger_poll.apply(args=(measurement,)).get() == "duplicate"
    trigger_poll.delay(measurement)  # and once more, late, through the broker

    wait_until(lambda: Operation.objects.get(pk=operation.pk).collected == 2, timeout=30)
    wait_until(lambda: locks.holder(triggering.lock_key(operation.modem_id)) is None, timeout=10)
    worker_drained()
    after = Operation.objects.get(pk=operation.pk)
    assert sim[0].triggers == 2  # one per channel: the duplicate started no second chain
    assert after.captures.count() == 2
    assert Transaction.objects.filter(capture__operation=operation).count() == 2
    assert (after.failed, after.consecutive_failures, after.last_error) == (0, 0, "")


def test_the_deadline_passes_while_polling(pnm_worker, farm):
    # The measurement takes longer than the worker's PNM_MEASURE_DEADLINE_S (3 s).
    sim = farm(1, measure_delay_s=6)
    operation = start(register_modem(sim[0]), duration_s=600, interval_s=60, channel_ids=[193])
    from captures.tasks import trigger_capture

    trigger_capture.delay(operation.pk)
    wait_until(lambda: operation.captures.exists(), timeout=20)
    assert locks.holder(triggering.lock_key(operation.modem_id))  # held while it measures

    failed = wait_until(
        lambda: operation.captures.filter(state=CaptureState.FAILED).first(), timeout=20
    )
    # Freed by the poll chain at the deadline, not by the lock's own expiry (33 s).
    wait_until(lambda: locks.holder(triggering.lock_key(operation.modem_id)) is None, timeout=5)
    assert failed.error.startswith("channel 193: RXMER on ifIndex ")
    assert "BUSY after" in failed.error
    after = Operation.objects.get(pk=operation.pk)
    assert after.state == OperationState.RUNNING  # one failure of the two allowed in a row
    assert (after.failed, after.consecutive_failures) == (1, 1)
    assert after.last_error == failed.error
    assert sim[0].triggers == 1
