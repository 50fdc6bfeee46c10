"""A worker killed with SIGKILL in the middle of a measurement: its modem is free again
within PNM_LEASE_TTL_S (not the measure deadline), the capture it had in flight fails as
``WorkerLost``, and the operation ends with the loss in its shortfall. Real processes:
a solo worker that is killed and a fresh one, beat, PostgreSQL, Redis, SNMP and TFTP."""

from __future__ import annotations

import os
import signal

import pytest
from django.utils import timezone

from captures import services
from captures.models import CaptureState, Operation, OperationState, Transaction
from captures.tests.helpers import WORKER_ENV, assert_accounted
from captures.tests.test_pipeline import finished, start
from core import locks
from tests.factories import register_modem
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# A lease of 1.5 s (renewed every 0.1 s poll); the old rule (measure deadline + 30 s)
# would have held the modem for 40 s, past the end of the operation.
CRASH_ENV = {**WORKER_ENV, "PNM_LEASE_TTL_S": "1.5", "PNM_MEASURE_DEADLINE_S": "10"}


def measuring(operation: Operation):
    """The capture a poll chain is measuring right now (its tick recorded in flight)."""
    tick = Operation.objects.get(pk=operation.pk).inflight_tick
    if tick is None:
        return None
    return operation.captures.filter(tick=tick, state=CaptureState.PENDING).first()


def test_a_worker_killed_mid_measurement_loses_one_capture_and_says_so(
    start_worker, beat, farm, operator_client
):
    # A 4 s measurement: the sweeper settles the capture (lease 1.5 s) before its file
    # would come; the modem has finished it before the next tick, 5 s on.
    sim = farm(1, measure_delay_s=4.0)
    doomed = start_worker(**CRASH_ENV)
    operation = start(register_modem(sim[0]), duration_s=25, interval_s=5, channel_ids=[193])

    lost = wait_until(lambda: measuring(operation), timeout=30, interval=0.05)
    os.kill(doomed.proc.pid, signal.SIGKILL)
    doomed.proc.wait(10)
    killed_at = timezone.now()
    # The sweeper (run here as beat would) finds the dead chain once its lease ran out.
    wait_until(lambda: services.sweep().abandoned, timeout=10, interval=0.1)
    assert locks.holder(services.modem_lock_key(operation.modem_id)) is None
    lost.refresh_from_db()
    assert lost.state == CaptureState.FAILED
    start_worker(**CRASH_ENV)

    done = finished(operation, timeout=120)

    lost.refresh_from_db()
    assert lost.state == CaptureState.FAILED  # its late file was refused
    assert "abandoned: its modem lease" in lost.error
    assert_accounted(done)
    assert {(r.outcome, r.reason): r.count for r in done.reasons.filter(outcome="failed")} == {
        ("failed", services.WORKER_LOST): 1
    }
    # The plan is intact and the status says what is missing.
    assert done.expected == done.planned_ticks == 6
    assert done.state == OperationState.COMPLETED_PARTIAL
    assert done.shortfall == done.expected - done.collected >= 1
    assert done.collected == Transaction.objects.filter(capture__operation=done).count()
    # The modem was free again soon: ticks after the crash were captured and stored.
    later = done.captures.filter(tick__gt=lost.tick, triggered_at__gt=killed_at)
    assert later.filter(state=CaptureState.STORED).exists()
    assert (done.inflight_tick, done.inflight_lease) == (None, "")
    # What an integration reads says the same.
    status = operator_client.get(f"/api/v1/captures/operations/{done.operation_id}/status/")
    assert status.status_code == 200
    body = status.json()
    assert (body["state"], body["failed"], body["shortfall"]) == (
        "completed_partial",
        done.failed,
        done.shortfall,
    )
    assert body["reasons"]["failed"] == {services.WORKER_LOST: 1}
