"""A threads worker with the deployment's connection pool: a trigger waiting for its file
holds no database connection, so a small pool serves every thread.

Same real pipeline as test_pipeline_arrivals, but the worker runs with DB_POOL_MAX_SIZE=1
(the deployment: 4 per process for 32 threads) and a 2 s pool timeout. Held through the
arrival wait, or through an SNMP exchange with a silent modem (2.5 s here), the one
connection would make the other threads' triggers wait for it and time out (psycopg_pool's
PoolTimeout, a failed tick).
"""

from __future__ import annotations

import pytest

from captures.models import OperationState
from captures.tests.helpers import WORKER_ENV, assert_accounted
from captures.tests.test_pipeline import finished, start
from simulators.modem import Failure
from tests.factories import register_modem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

POOLED = {
    **WORKER_ENV,
    "PNM_POLL_INTERVAL_S": "1",
    "PNM_ARRIVAL_WAIT_S": "1",
    "DB_POOL_MAX_SIZE": "1",
    "DB_POOL_TIMEOUT_S": "2",
    "PNM_SNMP_TIMEOUT_S": "2.5",  # longer than a wait for the pool may last
}


@pytest.fixture(scope="module")
def pooled_worker(start_worker):
    return start_worker(pool="threads", concurrency=4, **POOLED)


def test_triggers_waiting_for_their_files_share_a_pool_of_one_connection(
    pooled_worker, announcing, beat, farm
):
    sim = farm(4, measure_delay_s=0.8)  # four ticks at a time, each waiting ~1 s for its file
    operations = [start(register_modem(modem), channel_ids=[193]) for modem in sim]

    done = [finished(operation, timeout=90) for operation in operations]

    for operation in done:
        assert operation.state == OperationState.COMPLETED, operation.last_error
        assert (operation.collected, operation.failed) == (operation.expected, 0) == (3, 0)
        assert_accounted(operation)
    assert "PoolTimeout" not in pooled_worker.log()


def test_silent_modems_hold_no_connection_while_their_triggers_wait_for_snmp(
    pooled_worker, announcing, beat, farm
):
    sim = farm(4, failures={0: Failure.TIMEOUT, 1: Failure.TIMEOUT, 2: Failure.TIMEOUT})
    silent = [start(register_modem(modem), channel_ids=[193]) for modem in sim[:3]]
    healthy = start(register_modem(sim[3]), channel_ids=[193])

    done = finished(healthy, timeout=90)
    gave_up = [finished(operation, timeout=90) for operation in silent]

    assert done.state == OperationState.COMPLETED, done.last_error
    assert (done.collected, done.failed) == (done.expected, 0) == (3, 0)
    assert_accounted(done)
    for operation in gave_up:
        assert operation.state == OperationState.FAILED
        assert "did not answer SNMP" in operation.last_error
        failures = operation.reasons.filter(outcome="failed")
        assert set(failures.values_list("reason", flat=True)) == {"SnmpTimeout"}
        assert_accounted(operation)
    assert "PoolTimeout" not in pooled_worker.log()
