"""The per-CMTS cap end to end: a threads worker (ticks of different modems run at once)
with PNM_MAX_IN_FLIGHT_PER_CMTS=1, real SNMP and TFTP, beat, PostgreSQL and Redis."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from captures import services
from captures.models import OperationState, OutcomeReason, Transaction
from captures.tests.helpers import WORKER_ENV, assert_accounted
from captures.tests.test_pipeline import finished, start
from devices.models import CableModem
from tests.factories import register_modem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(scope="module")
def capped_worker(start_worker):
    return start_worker(pool="threads", **WORKER_ENV, PNM_MAX_IN_FLIGHT_PER_CMTS="1")


def on_cmts(modem: CableModem, cmts: str) -> CableModem:
    CableModem.objects.filter(pk=modem.pk).update(cmts=cmts)
    return CableModem.objects.get(pk=modem.pk)


def test_ticks_beyond_the_cmts_cap_are_missed_and_other_cmtses_run(capped_worker, beat, farm):
    """Two modems on one CMTS tick together, each capture holding the CMTS for over a
    second: one tick of each pair runs, the other is missed, with its reason. A modem on
    another CMTS is not held back."""
    sim = farm(3, measure_delay_s=1.2)
    crowded = [on_cmts(register_modem(modem), "hub-a") for modem in sim[:2]]
    alone = on_cmts(register_modem(sim[2]), "hub-b")
    operations = [
        start(modem, duration_s=4, interval_s=2, channel_ids=[193]) for modem in [*crowded, alone]
    ]

    *shared, single = [finished(operation, timeout=90) for operation in operations]

    for operation in [*shared, single]:
        assert_accounted(operation)
    assert single.state == OperationState.COMPLETED, single.last_error
    assert single.collected == single.expected == 3
    cap_misses = (
        OutcomeReason.objects.filter(
            operation__in=shared, outcome="missed", reason=services.CMTS_FULL
        ).aggregate(total=Sum("count"))["total"]
        or 0
    )
    assert cap_misses >= 1
    assert sum(operation.failed for operation in shared) == 0
    # Every planned capture of the pair either ran or was refused by the cap (or found its
    # own modem still busy): nothing was queued beyond the cap and lost later.
    collected = sum(operation.collected for operation in shared)
    assert collected == Transaction.objects.filter(capture__operation__in=shared).count()
    assert collected + cap_misses + sum(op.skipped for op in shared) == sum(
        op.expected for op in shared
    )
    for operation in shared:
        assert operation.state in (OperationState.COMPLETED, OperationState.COMPLETED_PARTIAL)
        assert (operation.state == OperationState.COMPLETED) == (operation.shortfall == 0)
