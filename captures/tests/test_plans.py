"""Which tests each tick triggers, and the plan the accounting fixes from it."""

from __future__ import annotations

import pytest

from captures import plans, services
from captures.models import Operation, OperationState
from captures.tests.helpers import assert_accounted
from devices.links.pnm import PnmTest
from tests.factories import make_operation

pytestmark = pytest.mark.django_db

RXMER, MODPROF, FEC = PnmTest.RXMER, PnmTest.MODULATION_PROFILE, PnmTest.FEC_SUMMARY


def performance(duration_s: int, interval_s: int) -> Operation:
    return Operation(
        name="multi_rxmer",
        measure_mode="ofdm_performance_1",
        test=RXMER.value,
        duration_s=duration_s,
        sample_interval_s=interval_s,
    )


def test_a_plain_operation_triggers_its_test_every_tick():
    operation = Operation(
        name="multi_histogram",
        measure_mode="continuous",
        test=PnmTest.HISTOGRAM.value,
        duration_s=60,
        sample_interval_s=10,
    )
    assert all(plans.tick_tests(operation, tick) == [PnmTest.HISTOGRAM] for tick in range(1, 8))
    assert plans.test_counts(operation, range(1, 8)) == {PnmTest.HISTOGRAM: 7}


def test_ofdm_performance_1_places_fec_summaries_on_600_s_marks_and_at_the_end():
    # One hour at 60 s: ticks at 0, 60, ..., 3600 s (61 of them). The 600 s marks fall on
    # ticks 11, 21, 31, 41, 51 and 61 ((tick - 1) * 60 = 600 k); tick 61 is the final one.
    operation = performance(3600, 60)
    assert operation.total_ticks == 61
    fec_ticks = [t for t in range(1, 62) if FEC in plans.tick_tests(operation, t)]
    assert fec_ticks == [11, 21, 31, 41, 51, 61]
    modprof_ticks = [t for t in range(1, 62) if MODPROF in plans.tick_tests(operation, t)]
    assert modprof_ticks == [31]  # the middle of 61
    assert all(plans.tick_tests(operation, t)[0] is RXMER for t in range(1, 62))
    assert plans.test_counts(operation, range(1, 62)) == {RXMER: 61, MODPROF: 1, FEC: 6}


def test_ofdm_performance_1_with_a_coarse_interval_still_covers_every_mark():
    # 25 minutes at 7 minutes: ticks at 0, 420, 840 and 1260 s (the last is the final one).
    # The 600 s mark falls in (420, 840], the 1200 s mark in (840, 1260]; the middle is 2.
    operation = performance(1500, 420)
    assert operation.total_ticks == 4
    assert [plans.tick_tests(operation, t) for t in range(1, 5)] == [
        [RXMER],
        [RXMER, MODPROF],
        [RXMER, FEC],
        [RXMER, FEC],
    ]


def test_the_plan_of_a_mixed_operation_counts_each_test_on_its_own_ticks():
    operation = make_operation(
        name="multi_rxmer",
        measure_mode="ofdm_performance_1",
        duration_s=1200,
        sample_interval_s=300,
    )  # ticks at 0, 300, 600, 900, 1200: FEC on 3 (600 s) and 5 (1200 s, final); modprof 3
    slots = services.plan_slots(operation, {RXMER: [193, 194], MODPROF: [193, 194], FEC: [193]})
    assert len(slots) == 5
    planned = {(row.test, row.channel_id): row.planned for row in operation.channels.all()}
    assert planned == {
        (RXMER.value, 193): 5,
        (RXMER.value, 194): 5,
        (MODPROF.value, 193): 1,
        (MODPROF.value, 194): 1,
        (FEC.value, 193): 2,
    }
    assert Operation.objects.get(pk=operation.pk).expected == 14

    first = services.claim_tick(operation.pk)
    assert first is not None
    services.tick_skipped(operation, first.number)  # tick 1: RxMER only
    after = Operation.objects.get(pk=operation.pk)
    assert after.skipped == 2

    assert services.stop_operation(after)
    stopped = Operation.objects.get(pk=operation.pk)
    assert stopped.state == OperationState.STOPPED
    assert (stopped.skipped, stopped.cancelled) == (2, 12)
    assert_accounted(stopped)
