"""The tick dispatcher against PostgreSQL and the real Redis broker: one pass claims every
due tick, sends what the snmp queue has room for and counts the rest; a sent tick that
waited too long is counted by the worker instead of run late."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery import current_app

from captures import dispatch, services, tasks
from captures.models import Operation
from config.queues import Queue
from tests.factories import make_modem, make_operation

pytestmark = pytest.mark.django_db(transaction=True)

TRIGGER = "captures.tasks.trigger_capture"


def _channel(connection) -> Any:
    return connection.default_channel


@pytest.fixture
def snmp_queue() -> Iterator[None]:
    """The snmp queue emptied before and after (no worker consumes it in these tests)."""
    with current_app.connection_for_write() as connection:
        _channel(connection).queue_declare(queue=Queue.SNMP.value)
        _channel(connection).queue_purge(Queue.SNMP.value)
    yield
    with current_app.connection_for_write() as connection:
        _channel(connection).queue_purge(Queue.SNMP.value)


def queued_ticks() -> list[tuple[int, int, float]]:
    """(operation pk, tick, due) of every trigger message waiting in the snmp queue."""
    found = []
    with current_app.connection_for_write() as connection:
        channel = _channel(connection)
        while (message := channel.basic_get(queue=Queue.SNMP.value, no_ack=True)) is not None:
            assert message.headers["task"] == TRIGGER
            args, kwargs, _embed = message.decode()
            found.append((args[0], kwargs["tick"], kwargs["due"]))
    return sorted(found)


def ten_second_ticks(index: int) -> Operation:
    """A 60 s multi-RxMER operation (7 ticks) on modem ``index``, its first tick due now."""
    return make_operation(make_modem(index), duration_s=60, sample_interval_s=10)


def reasons(operation_pk: int) -> dict[tuple[str, str], int]:
    operation = Operation.objects.get(pk=operation_pk)
    return {(row.outcome, row.reason): row.count for row in operation.reasons.all()}


def test_one_pass_claims_every_due_tick_and_sends_each_once(snmp_queue):
    due = [ten_second_ticks(index) for index in range(1, 4)]
    later = ten_second_ticks(4)
    Operation.objects.filter(pk=later.pk).update(next_tick_at=later.tick_due_at(2))

    first = dispatch.dispatch_due_ticks()
    again = dispatch.dispatch_due_ticks()  # nothing is due twice

    assert (first.sent, first.refused) == (3, 0)
    assert (again.sent, again.refused) == (0, 0)
    ticks = queued_ticks()
    assert [(pk, tick) for pk, tick, _ in ticks] == [(operation.pk, 1) for operation in due]
    for operation, (_, _, due_at) in zip(due, ticks, strict=True):
        row = Operation.objects.get(pk=operation.pk)
        assert row.started_at is not None
        assert due_at == row.started_at.timestamp()
        assert (row.last_tick, row.next_tick_at) == (1, row.tick_due_at(2))
    assert Operation.objects.get(pk=later.pk).last_tick == 0


def test_ticks_whose_time_passed_unclaimed_are_counted_missed(snmp_queue):
    operation = make_operation(duration_s=60, sample_interval_s=10)  # 7 ticks
    assert operation.started_at is not None

    claimed = services.claim_due_ticks(operation.started_at + timedelta(seconds=35))

    assert [(tick.operation.pk, tick.number, tick.final) for tick in claimed] == [
        (operation.pk, 4, False)  # due at 30 s; 1-3 were never dispatched
    ]
    row = Operation.objects.get(pk=operation.pk)
    assert row.ends_at is not None
    assert (row.missed, row.last_tick) == (3, 4)
    assert reasons(operation.pk) == {("missed", services.NOT_DISPATCHED): 3}
    final = services.claim_due_ticks(row.ends_at + timedelta(seconds=1))
    assert [(tick.number, tick.final) for tick in final] == [(7, True)]
    assert Operation.objects.get(pk=operation.pk).next_tick_at is None


def test_a_saturated_snmp_queue_gets_no_more_ticks_and_the_rest_is_counted(settings, snmp_queue):
    settings.PNM_DISPATCH_MAX_QUEUED = 2
    operations = [ten_second_ticks(index) for index in range(1, 6)]

    first = dispatch.dispatch_due_ticks()

    assert (first.sent, first.refused, first.queued_before) == (2, 3, 0)
    sent = {pk for pk, _, _ in queued_ticks()}
    assert len(sent) == 2
    for operation in operations:
        row = Operation.objects.get(pk=operation.pk)
        assert row.last_tick == 1  # claimed either way: the plan moves on
        if operation.pk in sent:
            assert row.missed == 0
        else:
            assert row.missed == 1
            assert reasons(operation.pk) == {("missed", services.WORKERS_SATURATED): 1}


def test_a_tick_that_waited_past_its_interval_is_counted_not_run(snmp_queue):
    operation = make_operation(duration_s=60, sample_interval_s=10)
    (tick,) = services.claim_due_ticks()

    ran = tasks.trigger_capture.apply(
        args=(operation.pk,), kwargs={"tick": tick.number, "due": time.time() - 11}
    ).get()

    assert ran == 0
    row = Operation.objects.get(pk=operation.pk)
    assert (row.missed, row.triggered) == (1, 0)
    assert reasons(operation.pk) == {("missed", services.QUEUED_TOO_LONG): 1}


def test_a_tick_overtaken_by_a_later_one_is_counted_not_run(snmp_queue):
    operation = make_operation(duration_s=60, sample_interval_s=10)
    assert operation.started_at is not None
    (first,) = services.claim_due_ticks()
    services.claim_due_ticks(operation.started_at + timedelta(seconds=10))  # tick 2

    ran = tasks.trigger_capture.apply(
        args=(operation.pk,), kwargs={"tick": first.number, "due": time.time()}
    ).get()

    assert ran == 0
    row = Operation.objects.get(pk=operation.pk)
    assert (row.last_tick, row.missed) == (2, 1)
    assert reasons(operation.pk) == {("missed", services.QUEUED_TOO_LONG): 1}


def test_a_lapsed_final_tick_settles_the_operation(snmp_queue):
    operation = make_operation(duration_s=20, sample_interval_s=10)  # 3 ticks
    assert operation.ends_at is not None
    (final,) = services.claim_due_ticks(operation.ends_at)
    assert final.final

    services.tick_lapsed(operation.pk, final.number, services.QUEUED_TOO_LONG)

    done = Operation.objects.get(pk=operation.pk)
    assert done.state == "completed_partial"
    assert (done.expected, done.missed, done.collected) == (3, 3, 0)
