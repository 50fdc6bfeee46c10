"""The tick dispatcher against PostgreSQL and the real Redis broker: one pass claims every
due tick, sends what the snmp queue has room for and counts the rest; a sent tick that
waited too long is counted by the worker instead of run late."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery import current_app
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from kombu.transport.redis import PublishBatch  # type: ignore[attr-defined]  # kombu 5.7, not in the stubs

from captures import dispatch, services, tasks
from captures.models import Capture, ChannelTally, Operation
from config.queues import Queue
from simulators.modem import Failure
from tests.factories import make_modem, make_operation, register_modem

pytestmark = pytest.mark.django_db(transaction=True)

TRIGGER = "captures.tasks.trigger_ticks"


def _channel(connection) -> Any:
    return connection.default_channel


@pytest.fixture
def snmp_queue() -> Iterator[None]:
    """The snmp queue emptied before and after (no worker consumes it in these tests), and
    no earlier pass remembered."""
    cache.delete(dispatch.LAST_DISPATCH_KEY)
    with current_app.connection_for_write() as connection:
        _channel(connection).queue_declare(queue=Queue.SNMP.value)
        _channel(connection).queue_purge(Queue.SNMP.value)
    yield
    with current_app.connection_for_write() as connection:
        _channel(connection).queue_purge(Queue.SNMP.value)


def queued_messages() -> list[Any]:
    """Every message waiting in the snmp queue, taken off it."""
    found = []
    with current_app.connection_for_write() as connection:
        channel = _channel(connection)
        while (message := channel.basic_get(queue=Queue.SNMP.value, no_ack=True)) is not None:
            found.append(message)
    return found


def queued_ticks() -> list[tuple[int, int, float]]:
    """(operation pk, tick, due) of every tick in the trigger messages of the snmp queue."""
    found = []
    for message in queued_messages():
        assert message.headers["task"] == TRIGGER
        # No result row per message (a task sent by name would ask for one).
        assert message.headers["ignore_result"] is True
        (ticks,), kwargs, _embed = message.decode()
        assert kwargs == {}
        found += [tuple(tick) for tick in ticks]
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

    assert first is not None
    assert again is not None
    assert (first.sent, again.sent) == (3, 0)
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


def test_due_ticks_beyond_the_room_stay_due_and_are_missed_once_their_time_passes(
    settings, snmp_queue
):
    settings.PNM_DISPATCH_MIN_QUEUED = 2
    operations = [ten_second_ticks(index) for index in range(1, 6)]

    first = dispatch.dispatch_due_ticks()

    assert first is not None
    assert (first.sent, first.queued_before, first.cap) == (2, 0, 2)
    sent = {pk for pk, _, _ in queued_ticks()}
    assert len(sent) == 2
    waiting = [operation for operation in operations if operation.pk not in sent]
    for operation in waiting:  # still due, nothing counted yet
        row = Operation.objects.get(pk=operation.pk)
        assert (row.last_tick, row.missed, row.next_tick_at) == (0, 0, row.started_at)
    started = waiting[0].started_at
    assert started is not None
    later = services.claim_due_ticks(started + timedelta(seconds=11))  # tick 2 is due now
    assert sorted(tick.operation.pk for tick in later) == sorted(o.pk for o in operations)
    for operation in operations:
        row = Operation.objects.get(pk=operation.pk)
        assert row.last_tick == 2
        assert row.missed == (0 if operation.pk in sent else 1)
        if operation.pk not in sent:
            assert reasons(operation.pk) == {("missed", services.NOT_DISPATCHED): 1}


@pytest.mark.parametrize(
    ("last", "queued", "cap"),
    [
        (None, 0, 64),  # the first pass: the floor
        (dispatch._Pass(at=99.0, queued_after=100, cap=100), 40, 90),  # 60/s drained, 1.5 s
        (dispatch._Pass(at=99.0, queued_after=100, cap=100), 0, 200),  # emptied: doubled
        (dispatch._Pass(at=99.0, queued_after=100, cap=100), 20, 200),  # nearly: doubled too
        (dispatch._Pass(at=99.0, queued_after=0, cap=70), 0, 70),  # given nothing: kept
        (dispatch._Pass(at=99.0, queued_after=40, cap=70), 40, 64),  # none drained: the floor
        (dispatch._Pass(at=50.0, queued_after=100, cap=100), 0, 64),  # too old to tell
    ],
)
def test_the_queue_cap_follows_the_rate_the_workers_drain_it(last, queued, cap):
    assert dispatch.queue_cap(last, queued, now=100.0) == cap


def test_a_tick_that_waited_past_its_interval_is_counted_not_run(snmp_queue):
    operation = make_operation(duration_s=60, sample_interval_s=10)
    (tick,) = services.claim_due_ticks()

    late = time.time() - 10.5
    ran = tasks.trigger_ticks.apply(args=([[operation.pk, tick.number, late]],)).get()

    assert ran == 0
    row = Operation.objects.get(pk=operation.pk)
    assert (row.missed, row.triggered) == (1, 0)
    assert reasons(operation.pk) == {("missed", services.QUEUED_TOO_LONG): 1}


def test_a_tick_overtaken_by_a_later_one_is_counted_not_run(snmp_queue):
    operation = make_operation(duration_s=60, sample_interval_s=10)
    assert operation.started_at is not None
    (first,) = services.claim_due_ticks()
    services.claim_due_ticks(operation.started_at + timedelta(seconds=10))  # tick 2

    ran = tasks.trigger_ticks.apply(args=([[operation.pk, first.number, time.time()]],)).get()

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


def test_a_stale_tick_is_left_for_the_next_one_and_a_final_tick_is_always_sent(snmp_queue):
    operation = ten_second_ticks(1)  # 7 ticks, every 10 s
    started, ends = operation.started_at, operation.ends_at
    assert started is not None
    assert ends is not None

    assert services.claim_due_ticks(started + timedelta(seconds=6)) == []  # 6 s late
    (fresh,) = services.claim_due_ticks(started + timedelta(seconds=14))  # tick 2, 4 s late
    assert fresh.number == 2
    assert Operation.objects.get(pk=operation.pk).missed == 1  # tick 1 went stale
    (final,) = services.claim_due_ticks(ends + timedelta(seconds=9))
    assert (final.number, final.final) == (7, True)


def test_one_second_ticks_are_claimed_whatever_the_phase_of_the_passes(snmp_queue):
    operation = make_operation(make_modem(1), duration_s=60, sample_interval_s=1)
    started = operation.started_at
    assert started is not None

    # Passes 0.9 s after each tick: later than half the interval, within the grace.
    claimed = [
        services.claim_due_ticks(started + timedelta(seconds=second + 0.9)) for second in range(3)
    ]

    assert [[tick.number for tick in ticks] for ticks in claimed] == [[1], [2], [3]]


def test_ticks_claimed_but_not_sent_are_counted_at_once(monkeypatch, settings, snmp_queue):
    """Sends go in pipelined chunks: a chunk that fails may have reached the queue (a lost
    reply), so its ticks stay unsettled for a worker to run or the end to count; the ticks
    of the messages after it were never sent and are counted at once."""
    monkeypatch.setattr(dispatch, "SEND_CHUNK", 1)
    settings.PNM_TICKS_PER_MESSAGE = 2
    operations = [ten_second_ticks(index) for index in range(1, 6)]  # messages of 2, 2, 1
    send = dispatch._send_trigger
    calls = []

    def broker_goes_away(**options):
        calls.append(options)
        if len(calls) == 2:  # the second chunk
            raise ConnectionError("broker gone")
        send(**options)

    monkeypatch.setattr(dispatch, "_send_trigger", broker_goes_away)

    with pytest.raises(ConnectionError):
        dispatch.dispatch_due_ticks()

    first_chunk, failed_chunk = ({pk for pk, _, _ in call["args"][0]} for call in calls)
    never_sent = {operation.pk for operation in operations} - first_chunk - failed_chunk
    assert [len(first_chunk), len(failed_chunk), len(never_sent)] == [2, 2, 1]
    assert {pk for pk, _, _ in queued_ticks()} == first_chunk  # the failed chunk was discarded
    for operation in operations:
        row = Operation.objects.get(pk=operation.pk)
        assert row.last_tick == 1
        if operation.pk in never_sent:
            assert reasons(operation.pk) == {("missed", services.NOT_DISPATCHED): 1}
        else:  # a worker runs it (or, if it never does, the sweep counts it at the end)
            assert (row.missed, row.settled) == (0, 0)


def test_a_pass_sends_each_chunk_in_one_round_trip(monkeypatch, settings, snmp_queue):
    """kombu's publish batch: the Redis pipeline runs once per chunk, not once per message."""
    monkeypatch.setattr(dispatch, "SEND_CHUNK", 3)
    settings.PNM_TICKS_PER_MESSAGE = 1
    operations = [ten_second_ticks(index) for index in range(1, 8)]
    flushes = []
    original = PublishBatch.flush

    def counted(self):
        flushes.append(self._buffered)
        return original(self)

    monkeypatch.setattr(PublishBatch, "flush", counted)

    passed = dispatch.dispatch_due_ticks()

    assert passed is not None
    assert passed.sent == 7
    assert [size for size in flushes if size] == [3, 3, 1]
    assert sorted(pk for pk, _, _ in queued_ticks()) == sorted(o.pk for o in operations)


def test_a_single_capture_is_claimed_when_made_and_sent_with_its_tick(snmp_queue):
    operation = make_operation(make_modem(1), measure_mode="single", duration_s=10)
    row = Operation.objects.get(pk=operation.pk)
    assert (row.last_tick, row.last_tick_at, row.next_tick_at) == (1, row.started_at, None)

    with current_app.connection_for_write() as connection:
        message = _channel(connection).basic_get(queue=Queue.SNMP.value, no_ack=True)
        assert message is not None
        assert message.headers["task"] == TRIGGER
        args, kwargs, _embed = message.decode()
    assert (args, kwargs) == ([[[operation.pk, 1, None]]], {})  # no ``due``: it waits its turn
    assert services.claim_due_ticks() == []  # the dispatcher does not send it again
    assert services.claim_tick(operation.pk) is None  # nor does a second claim
    assert operation.pk in services.reclaim_ticks({operation.pk: 1})  # the worker reads it back


def test_a_pass_packs_its_ticks_into_messages_named_by_their_first(settings, snmp_queue):
    settings.PNM_TICKS_PER_MESSAGE = 2
    operations = [ten_second_ticks(index) for index in range(1, 6)]

    passed = dispatch.dispatch_due_ticks()

    assert passed is not None
    assert passed.sent == 5
    messages = queued_messages()
    packed = [[tick[0] for tick in message.decode()[0][0]] for message in messages]
    assert sorted(len(ticks) for ticks in packed) == [1, 2, 2]
    assert sorted(pk for ticks in packed for pk in ticks) == sorted(o.pk for o in operations)
    by_pk = {operation.pk: operation for operation in operations}
    for message, ticks in zip(messages, packed, strict=True):
        first = f"operation {by_pk[ticks[0]].operation_id} tick 1"
        more = f" and {len(ticks) - 1} more" if len(ticks) > 1 else ""
        assert message.headers["shadow"] == first + more


def test_the_queue_is_counted_in_ticks_as_full_messages(settings, snmp_queue):
    """Admission counts ticks: each message waiting counts as PNM_TICKS_PER_MESSAGE."""
    settings.PNM_TICKS_PER_MESSAGE = 3
    settings.PNM_DISPATCH_MIN_QUEUED = 5
    for index in range(1, 9):
        ten_second_ticks(index)

    first = dispatch.dispatch_due_ticks()
    cache.delete(dispatch.LAST_DISPATCH_KEY)  # the next pass starts from the floor again
    second = dispatch.dispatch_due_ticks()

    assert first is not None
    assert second is not None
    assert (first.sent, first.queued_before) == (5, 0)  # messages of 3 and 2
    assert (second.sent, second.queued_before) == (0, 6)  # two messages: six ticks' room


@pytest.fixture
def tick_threads() -> Iterator[None]:
    """This process's tick threads, ended after the test with their database connections
    (the test database is dropped at the end)."""
    yield
    tasks.stop_tick_threads()
    gc.collect()


def test_a_messages_ticks_run_side_by_side_and_a_silent_modem_retries_alone(
    settings, farm, snmp_queue, tick_threads
):
    """The first tick's modem does not answer: the second tick is triggered while the
    first still waits for its SNMP timeout, and the first goes on alone, as a retry."""
    settings.PNM_SNMP_TIMEOUT_S = 1.0
    settings.PNM_SNMP_RETRIES = 1
    settings.PNM_ARRIVAL_WAIT_S = 0
    sim = farm(2, failures={0: Failure.TIMEOUT})
    silent, answering = (
        make_operation(register_modem(modem), duration_s=60, sample_interval_s=10) for modem in sim
    )
    assert len(services.claim_due_ticks()) == 2
    began = time.time()

    ran = tasks.trigger_ticks.apply(args=([[silent.pk, 1, began], [answering.pk, 1, began]],)).get()

    assert ran == 1
    assert time.time() - began >= 2.0  # the silent modem's timeout and its retry
    (capture,) = Capture.objects.filter(operation=answering)
    assert capture.triggered_at is not None
    assert capture.triggered_at.timestamp() - began < 1.0  # not after the silent one's
    assert not Capture.objects.filter(operation=silent).exists()
    messages = queued_messages()
    retried = [m for m in messages if m.headers["task"] == "captures.tasks.trigger_capture"]
    assert len(retried) == 1
    assert retried[0].headers["retries"] == 1
    args, kwargs, _embed = retried[0].decode()
    assert args == [silent.pk]
    assert (kwargs["tick"], kwargs["error_kind"]) == (1, "SnmpTimeout")
    assert Operation.objects.get(pk=silent.pk).failed == 0  # not counted until its last try


def test_missed_ticks_of_unplanned_operations_are_counted_in_the_same_statements(snmp_queue):
    """Above capacity a pass counts hundreds of operations that never had a tick run (no
    channel known, so no slot planned): their channel-less rows are made and counted in a
    few statements, however many operations, and never made twice."""
    statements = []
    for count in (3, 12):
        operations = [ten_second_ticks(10 * count + index) for index in range(count)]
        started = min(o.started_at for o in operations if o.started_at is not None)
        with CaptureQueriesContext(connection) as queries:
            claimed = services.claim_due_ticks(started + timedelta(seconds=11))  # tick 1 lapsed
        assert len(claimed) == count
        statements.append(len(queries.captured_queries))
        # Tick 2 was claimed (a worker counts it); tick 3 lapses unclaimed: the same rows.
        later = services.claim_due_ticks(started + timedelta(seconds=31))
        assert len(later) == count
        for operation in operations:
            row = Operation.objects.get(pk=operation.pk)
            assert (row.missed, row.last_tick) == (2, 4)
            (tally,) = ChannelTally.objects.filter(operation=operation, channel_id__isnull=True)
            assert (tally.planned, tally.missed) == (2, 2)
            assert reasons(operation.pk) == {("missed", services.NOT_DISPATCHED): 2}
    assert statements[0] == statements[1]
