"""The sweeper on running operations whose timing fields are empty: no TypeError."""

from __future__ import annotations

import pytest

from captures import services
from captures.models import Operation, OperationState
from tests.factories import make_modem, make_operation

pytestmark = pytest.mark.django_db


def test_running_operation_without_end_time_is_failed_with_a_reason():
    operation = make_operation(duration_s=600, sample_interval_s=10)
    healthy = make_operation(make_modem(2), duration_s=600, sample_interval_s=10)
    Operation.objects.filter(pk=operation.pk).update(ends_at=None)

    result = services.sweep()

    assert result.failed == 1
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert operation.last_error == services.NO_END_TIME
    assert operation.finished_at is not None
    assert Operation.objects.get(pk=operation.pk).next_tick_at is None
    assert Operation.objects.get(pk=healthy.pk).state == OperationState.RUNNING
    assert services.sweep().failed == 0  # idempotent: nothing left to fail


def test_final_tick_claimed_without_a_time_is_settled():
    operation = make_operation(duration_s=20, sample_interval_s=10)
    Operation.objects.filter(pk=operation.pk).update(
        last_tick=operation.total_ticks, last_tick_at=None
    )

    result = services.sweep()

    assert result.completed == 1
    operation.refresh_from_db()
    assert operation.final_tick_done
    # Nothing ever settled its ticks: missed, and the operation says it is incomplete.
    assert operation.state == OperationState.COMPLETED_PARTIAL
    assert (operation.missed, operation.shortfall) == (operation.expected, operation.expected)


def test_tick_of_a_running_operation_without_end_time_is_refused():
    operation = make_operation(duration_s=600, sample_interval_s=10)
    Operation.objects.filter(pk=operation.pk).update(ends_at=None)

    assert services.claim_tick(operation.pk) is None  # it used to raise TypeError

    operation.refresh_from_db()
    assert operation.last_tick == 0  # nothing claimed: the sweeper fails it (test above)
    assert operation.state == OperationState.RUNNING
