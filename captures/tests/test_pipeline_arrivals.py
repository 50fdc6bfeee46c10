"""The arrival wait: a threads worker ends a tick when the receiver announces its file.

Same real pipeline as test_pipeline (SNMP and TFTP over 127.0.0.1, worker and beat
processes, PostgreSQL, Redis), with the snmp work on a ``threads`` worker that waits for
uploads (PNM_ARRIVAL_WAIT_S) and the receiver announcing them.
"""

from __future__ import annotations

import pytest

from captures.models import OperationState, Transaction
from captures.tests.helpers import WORKER_ENV, assert_accounted
from captures.tests.test_pipeline import finished, start
from simulators.modem import Failure
from tests.factories import register_modem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# A trigger waits up to 2 s for its file, past the first poll's due time (1 s); a
# measurement may take 6 s (a 2.5 s one is still polled within it).
WAITING = {
    **WORKER_ENV,
    "PNM_POLL_INTERVAL_S": "1",
    "PNM_ARRIVAL_WAIT_S": "2",
    "PNM_MEASURE_DEADLINE_S": "6",
}


@pytest.fixture(scope="module")
def waiting_worker(start_worker):
    return start_worker(pool="threads", **WAITING)


def poll_tasks_run(worker) -> int:
    return worker.log().count("Task captures.tasks.trigger_poll[")


def test_a_prompt_file_ends_its_tick_without_a_poll_task(waiting_worker, announcing, beat, farm):
    sim = farm(1, measure_delay_s=0.2)
    polls_before = poll_tasks_run(waiting_worker)
    operation = start(register_modem(sim[0]), channel_ids=[193])

    done = finished(operation)

    assert done.state == OperationState.COMPLETED, done.last_error
    assert (
        done.collected
        == done.expected
        == Transaction.objects.filter(capture__operation=done).count()
        == 3
    )
    assert_accounted(done)
    assert poll_tasks_run(waiting_worker) == polls_before  # every tick ended in its trigger


def test_a_file_later_than_a_poll_interval_but_within_the_wait_needs_no_poll_task(
    waiting_worker, announcing, beat, farm
):
    """A 1.5 s measurement: past the first poll's due time, within the 2 s wait."""
    sim = farm(1, measure_delay_s=1.5)
    polls_before = poll_tasks_run(waiting_worker)
    operation = start(register_modem(sim[0]), duration_s=4, interval_s=4, channel_ids=[193])

    done = finished(operation, timeout=90)

    assert done.state == OperationState.COMPLETED, done.last_error
    assert done.collected == done.expected == 2
    assert_accounted(done)
    assert poll_tasks_run(waiting_worker) == polls_before


def test_further_channels_and_late_files_go_through_the_poll_tasks(
    waiting_worker, announcing, beat, farm
):
    """Two channels: the second is triggered by a poll task. A 2.5 s measurement: the
    wait gives up after its 2 s and the poll tasks take over. (Duration = interval:
    a tick at the start and the final one.)"""
    sim = farm(1, measure_delay_s=2.5)
    polls_before = poll_tasks_run(waiting_worker)
    operation = start(register_modem(sim[0]), duration_s=8, interval_s=8)

    done = finished(operation, timeout=90)

    assert done.state == OperationState.COMPLETED, done.last_error
    assert done.collected == done.expected == 4  # two ticks x two channels
    assert_accounted(done)
    assert {t.channel_id for t in Transaction.objects.filter(capture__operation=done)} == {
        193,
        194,
    }
    assert poll_tasks_run(waiting_worker) > polls_before


def test_a_file_that_never_comes_fails_at_its_deadline(waiting_worker, announcing, beat, farm):
    sim = farm(1, failures={0: Failure.NO_UPLOAD}, measure_delay_s=0.2)
    operation = start(register_modem(sim[0]), duration_s=2, interval_s=1, channel_ids=[193])

    done = finished(operation, timeout=90)

    assert done.state == OperationState.FAILED
    assert "not received by its deadline" in done.last_error
    assert done.collected == 0
    assert done.failed >= 1
    assert_accounted(done)


def test_hung_modems_do_not_hold_the_threads_of_a_healthy_one(
    waiting_worker, announcing, beat, farm
):
    """Celery does not enforce time limits on the threads pool: each blocking step bounds
    itself (an SNMP request its timeout budget, the arrival wait PNM_ARRIVAL_WAIT_S, the
    measurement the poll chain's deadline). Two modems that never answer SNMP and one that
    never uploads share the worker's 4 threads with a healthy modem, whose every planned
    capture must still arrive (a held thread would show as a skipped or missed tick)."""
    sim = farm(
        4,
        failures={0: Failure.TIMEOUT, 1: Failure.TIMEOUT, 2: Failure.NO_UPLOAD},
        measure_delay_s=0.2,
    )
    operations = [
        start(register_modem(modem), duration_s=6, interval_s=3, channel_ids=[193]) for modem in sim
    ]

    done = [finished(operation, timeout=120) for operation in operations]

    *hung, healthy = done
    assert healthy.state == OperationState.COMPLETED, healthy.last_error
    assert healthy.collected == healthy.expected == 3
    assert healthy.shortfall == healthy.skipped == healthy.missed == 0
    for operation, kind in zip(hung, ("SnmpTimeout", "SnmpTimeout", "UploadTimeout"), strict=True):
        assert operation.state == OperationState.FAILED
        assert operation.collected == 0
        assert {row.reason for row in operation.reasons.filter(outcome="failed")} == {kind}
    for operation in done:
        assert_accounted(operation)
