"""End to end: beat -> worker (SNMP to simulated modems) -> TFTP receiver -> staging.

Real SNMP and TFTP over 127.0.0.1, a real worker and beat, PostgreSQL and Redis.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict

import pytest
import zstandard

from captures import services, storage, triggering
from captures.models import (
    OPERATION_MODES,
    TERMINAL_STATES,
    CaptureState,
    Operation,
    OperationState,
    Transaction,
)
from captures.tests.helpers import assert_accounted
from core import locks
from simulators.modem import Failure
from tests.factories import register_modem
from tests.helpers import wait_until, worker_round_trip

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def start(
    modem,
    duration_s: int = 4,
    interval_s: int = 2,
    name: str = "multi_rxmer",
    channel_ids=None,
    mode: str = "",
) -> Operation:
    """By default three ticks (0 s, 2 s, the final at 4 s): a tick (two channels) takes
    about a second here, so none finds the modem still busy with the one before. ``mode``:
    the family's first measure mode unless given."""
    return services.start_operation(
        modem=modem,
        name=name,
        measure_mode=mode or OPERATION_MODES[name][0],
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
    # The plan: a tick at 0 s and 2 s, the final one at 4 s; two OFDM channels each.
    assert (done.planned_ticks, done.expected) == (3, 6)
    assert done.collected == len(records) == done.triggered == done.expected
    assert done.failed == done.skipped == done.missed == done.cancelled == done.shortfall == 0
    assert_accounted(done)
    assert done.time_remaining == 0
    assert Operation.objects.get(pk=done.pk).next_tick_at is None
    # The modem records an upload after its last ACK, which can come after the receiver stored it.
    wait_until(lambda: len(sim[0].uploads) >= len(records))
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
    assert (status["planned_ticks"], status["expected"], status["shortfall"]) == (3, 6, 0)
    assert status["reasons"] == {}
    per_channel = [(c["channel_id"], c["planned"], c["collected"]) for c in status["channels"]]
    assert per_channel == [(193, 3, 3), (194, 3, 3)]
    assert status["time_remaining"] == 0
    assert status["updated"] == int(done.updated.timestamp())


def test_channel_estimation_over_snmpv3(pnm_worker, beat, farm):
    sim = farm(1)
    operation = start(register_modem(sim[0], v3=True), name="multi_ds_channel_estimation")

    done = finished(operation)

    assert done.state == OperationState.COMPLETED, done.last_error
    records = Transaction.objects.filter(modem=done.modem)
    assert set(records.values_list("pnm_test_type", flat=True)) == {"DS_OFDM_CHAN_EST_COEF"}
    assert done.collected == done.expected == records.count() == 6
    assert_accounted(done)


def test_stop_midway(pnm_worker, beat, farm, operator_client):
    sim = farm(1)
    operation = start(register_modem(sim[0]), duration_s=60, interval_s=1)
    wait_until(lambda: Operation.objects.get(pk=operation.pk).collected >= 2, timeout=30)

    response = operator_client.post(f"/api/v1/captures/operations/{operation.operation_id}/stop/")

    assert response.status_code == 200
    assert response.json()["state"] == "stopped"
    assert Operation.objects.get(pk=operation.pk).next_tick_at is None
    stopped = Operation.objects.get(pk=operation.pk)
    assert 0 < stopped.time_remaining <= 60  # seconds left, rounded up: 60 within the first
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
    assert after.planned_ticks == 61
    assert after.cancelled > 0
    assert after.collected == Transaction.objects.filter(capture__operation=after).count()
    assert_accounted(after)


@pytest.mark.parametrize(
    ("failure", "state", "error", "kind"),
    [
        (Failure.TIMEOUT, OperationState.FAILED, "did not answer SNMP", "SnmpTimeout"),
        (Failure.WRONG_COMMUNITY, OperationState.FAILED, "did not answer SNMP", "SnmpTimeout"),
        (Failure.NO_UPLOAD, OperationState.FAILED, "not received by its deadline", "UploadTimeout"),
        (Failure.TRUNCATED_UPLOAD, OperationState.FAILED, "transfer aborted", "UploadFailed"),
        (Failure.STALE_SAMPLE_READY, OperationState.COMPLETED, "", ""),
        (Failure.IGNORE_FILE_NAME, OperationState.COMPLETED, "", ""),
    ],
)
def test_failure_knobs(pnm_worker, beat, farm, failure, state, error, kind):
    sim = farm(1, failures={0: failure}, measure_delay_s=0.5)
    # Two channels measured 0.5 s apart: with IGNORE_FILE_NAME both files often carry the
    # same MIB default name (MAC + second); each must still land on its own capture.
    operation = start(register_modem(sim[0]), duration_s=6, interval_s=3)

    done = finished(operation, timeout=90)

    assert done.state == state, done.last_error
    assert error in done.last_error
    assert done.planned_ticks == 3
    assert_accounted(done)
    if state == OperationState.COMPLETED:
        assert done.collected == done.expected == 6
        assert done.shortfall == done.failed == 0
        records = Transaction.objects.filter(capture__operation=done)
        names = records.values_list("filename", flat=True)
        assert all(name.startswith("ds_ofdm_rxmer_per_subcar_") for name in names)
    else:
        assert done.collected == 0
        assert done.failed >= 1  # counted, with its error class
        failed_by = {row.reason: row.count for row in done.reasons.filter(outcome="failed")}
        assert set(failed_by) == {kind}
        assert sum(failed_by.values()) == done.failed
        assert done.cancelled == done.expected - done.failed - done.skipped - done.missed
        assert Operation.objects.get(pk=done.pk).next_tick_at is None


def test_a_busy_modem_skips_ticks_and_says_so(pnm_worker, beat, farm, operator_client):
    """Two operations on one modem at a 1 s interval, a measurement taking ~1 s per
    channel: ticks find the modem busy. They are skipped, counted with their reason, the
    plan stays, and the operations do not claim completeness they lack."""
    sim = farm(1, measure_delay_s=1.0)
    modem = register_modem(sim[0])
    operations = [start(modem, duration_s=4, interval_s=1) for _ in range(2)]

    done = [finished(operation, timeout=90) for operation in operations]

    assert sum(operation.skipped for operation in done) > 0
    for operation in done:
        assert (operation.planned_ticks, operation.expected) == (5, 10)  # the plan, kept
        assert_accounted(operation)
        stored = Transaction.objects.filter(capture__operation=operation).count()
        assert operation.collected == stored
        if operation.collected < operation.expected:
            assert operation.state == OperationState.COMPLETED_PARTIAL
        else:
            assert operation.state == OperationState.COMPLETED
        skipped_by = {row.reason: row.count for row in operation.reasons.filter(outcome="skipped")}
        assert skipped_by == ({"modem busy": operation.skipped} if operation.skipped else {})
        status = operator_client.get(
            f"/api/v1/captures/operations/{operation.operation_id}/status/"
        ).json()
        assert status["state"] == operation.state
        assert status["skipped"] == operation.skipped
        assert status["shortfall"] == operation.expected - stored
        assert status["reasons"].get("skipped", {}) == skipped_by
    listed = operator_client.get("/api/v1/captures/operations/").json()
    rows = {row["operation_id"]: row for row in listed["results"]}
    for operation in done:
        assert rows[operation.operation_id]["skipped"] == operation.skipped
        assert rows[operation.operation_id]["shortfall"] == operation.shortfall


def test_duplicate_staging_records_one_transaction(pnm_worker, beat, farm):
    sim = farm(1)
    operation = start(register_modem(sim[0]))
    done = finished(operation)
    capture = done.captures.filter(state=CaptureState.STORED).first()
    assert capture is not None
    from captures.tasks import stage_captures, trigger_capture

    # Redeliver the staging of a stored capture, and a tick of a finished operation.
    stage_captures.delay([capture.pk])
    stage_captures.delay([capture.pk])
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
    wait_until(
        lambda: locks.holder(services.modem_lock_key(operation.modem_id)) is None, timeout=10
    )
    worker_drained()
    after = Operation.objects.get(pk=operation.pk)
    assert sim[0].triggers == 2  # one per channel: the duplicate started no second chain
    assert after.captures.count() == 2
    assert Transaction.objects.filter(capture__operation=operation).count() == 2
    assert (after.failed, after.consecutive_failures, after.last_error) == (0, 0, "")
    assert after.triggered == 2


def test_the_deadline_passes_while_polling(pnm_worker, farm):
    # The measurement takes longer than the worker's PNM_MEASURE_DEADLINE_S (3 s).
    sim = farm(1, measure_delay_s=6)
    operation = start(register_modem(sim[0]), duration_s=600, interval_s=60, channel_ids=[193])
    from captures.tasks import trigger_capture

    trigger_capture.delay(operation.pk)
    wait_until(lambda: operation.captures.exists(), timeout=20)
    assert locks.holder(services.modem_lock_key(operation.modem_id))  # held while it measures

    failed = wait_until(
        lambda: operation.captures.filter(state=CaptureState.FAILED).first(), timeout=20
    )
    # Freed by the poll chain at the deadline, not by the lease running out (PNM_LEASE_TTL_S, 10 s).
    wait_until(lambda: locks.holder(services.modem_lock_key(operation.modem_id)) is None, timeout=5)
    assert failed.error.startswith("channel 193: RXMER on ifIndex ")
    assert "BUSY after" in failed.error
    after = Operation.objects.get(pk=operation.pk)
    assert after.state == OperationState.RUNNING  # one failure of the two allowed in a row
    assert (after.failed, after.consecutive_failures) == (1, 1)
    assert after.last_error == failed.error
    assert sim[0].triggers == 1
