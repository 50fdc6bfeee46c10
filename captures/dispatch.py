"""Sending ticks to the snmp workers: one dispatcher for every running operation.

Beat runs ``captures.tasks.dispatch_ticks`` every second (seeded by a data migration). A
pass (one at a time, under a lease) claims due ticks of running operations in a few
statements for all of them (``services.claim_due_ticks``, keyed by
``Operation.next_tick_at``) and sends them, up to PNM_TICKS_PER_MESSAGE in one
``trigger_ticks`` message: a fixed rate from the start (the capture time does not stretch
the cycle, unlike PyPNM's sleep-then-capture loop).

Admission: PostgreSQL is the queue; the broker holds only what the workers will start
soon. A pass tops the ``snmp`` queue up to about PNM_DISPATCH_QUEUE_S seconds of work at
the rate the workers drained it since the last pass (the cap doubles while they empty it,
never below PNM_DISPATCH_MIN_QUEUED), with the fresh ticks of the operations served
longest ago. Due ticks beyond the room stay due; one whose time passes before there is
room is counted missed when the operation's next tick is claimed (``not dispatched in
time``). Above capacity the workers so stay busy on fresh ticks and the rest is counted,
not piled up to expire. A sent tick that still waits past its grace (its interval, at
least 3 s) is counted missed by the worker (``services.QUEUED_TOO_LONG``). A single capture
is not dispatched: its one tick is sent when its row is committed. The queue is measured
in messages and counted as full ones (PNM_TICKS_PER_MESSAGE ticks each): a pass's last
message may carry fewer, and a poll task counts as a message too, so the estimate errs
towards a shorter queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from captures import services
from captures.models import Operation
from config.queues import Queue
from core import locks

TRIGGER_TASK = "captures.tasks.trigger_ticks"


@dataclass(frozen=True)
class Dispatched:
    sent: int
    queued_before: int  # ticks waiting in the snmp queue when the pass began (estimated)
    cap: int  # the queue's cap for this pass, in ticks


@dataclass(frozen=True)
class _Pass:
    """What the next pass needs to know of this one (kept in the cache)."""

    at: float
    queued_after: int
    cap: int


LAST_DISPATCH_KEY = "pnm:dispatch:last-pass"
DISPATCH_LEASE = "pnm:dispatch:lease"
DISPATCH_LEASE_TTL_S = 30.0
SEND_CHUNK = 100  # messages per pipelined publish


def run_once(operations: Sequence[tuple[Operation, str]]) -> None:
    """Send single captures' one tick each (claimed by ``services.start_operations``) once
    their rows are committed, through one producer. A tick lost on the way settles as a
    dispatched one does: missed, "never settled" (``services.sweep``). Each operation's
    label is the name Flower shows for its message (Celery's ``shadow``), e.g. the campaign
    it belongs to."""
    sends = _messages([([operation.pk, 1, None], label) for operation, label in operations])

    def send() -> None:
        for _ in _send_in_chunks(sends):
            pass

    transaction.on_commit(send)


def dispatch_due_ticks() -> Dispatched | None:
    """One dispatcher pass: claim as many due ticks as the snmp queue has room for and send
    them. None when another pass is under way."""
    with locks.held(DISPATCH_LEASE, DISPATCH_LEASE_TTL_S) as lease:
        if lease is None:
            return None
        now = time.time()
        queued = queued_triggers() * settings.PNM_TICKS_PER_MESSAGE
        cap = queue_cap(cache.get(LAST_DISPATCH_KEY), queued, now)
        ticks = services.claim_due_ticks(limit=max(0, cap - queued))
        sends = _messages(
            [
                (
                    [tick.operation.pk, tick.number, _due_epoch(tick)],
                    f"operation {tick.operation.operation_id} tick {tick.number}",
                )
                for tick in ticks
            ]
        )
        sent = 0  # the messages of the chunks sent so far
        try:
            for sent in _send_in_chunks(sends):  # noqa: B007 (read by the except clause)
                pass
        except Exception:
            # The broker went away. The chunks after the failed one were never sent: count
            # their ticks now, not at the end. The failed chunk may have reached the queue
            # before the error (a lost reply), so a worker may still run its ticks: they are
            # left unsettled, and counted missed ("never settled") at the end if they never
            # ran, rather than counted missed and then collected.
            for message in sends[sent + SEND_CHUNK :]:
                for operation_pk, number, _due in message["args"][0]:
                    services.tick_lapsed(operation_pk, number, services.NOT_DISPATCHED)
            raise
        cache.set(LAST_DISPATCH_KEY, _Pass(now, queued + len(ticks), cap), timeout=60)
    return Dispatched(sent=len(ticks), queued_before=queued, cap=cap)


def queue_cap(last: _Pass | None, queued: int, now: float) -> int:
    """How many triggers may wait in the snmp queue: PNM_DISPATCH_QUEUE_S of the rate the
    workers drained it since ``last`` pass; twice the last cap when they left less than a
    quarter of it (they may be faster than what they were given)."""
    floor = settings.PNM_DISPATCH_MIN_QUEUED
    if last is None or not 0 < now - last.at < 30:
        return floor
    drained = max(0, last.queued_after - queued)
    cap = drained / (now - last.at) * settings.PNM_DISPATCH_QUEUE_S
    if last.queued_after == 0:
        cap = last.cap  # nothing was given to the workers: nothing learnt
    elif queued * 4 < last.queued_after:
        cap = max(cap, last.cap * 2)
    return int(min(max(cap, floor), settings.PNM_DISPATCH_BATCH))


def _messages(ticks: Sequence[tuple[list, str]]) -> list[dict[str, Any]]:
    """``_send_trigger``'s options for ``ticks`` ([operation pk, tick, due] and its label
    each), PNM_TICKS_PER_MESSAGE to a message, named in Flower by its first tick's label."""
    size = settings.PNM_TICKS_PER_MESSAGE
    messages = []
    for start in range(0, len(ticks), size):
        entries, labels = zip(*ticks[start : start + size], strict=True)
        shadow = labels[0] + (f" and {len(labels) - 1} more" if len(labels) > 1 else "")
        messages.append({"args": [list(entries)], "shadow": shadow or None})
    return messages


def _send_in_chunks(sends: Sequence[dict[str, Any]]) -> Iterator[int]:
    """Send a trigger message for each of ``sends`` (``_send_trigger``'s options) through one
    producer, one pipelined round trip per SEND_CHUNK (kombu's publish batch: a send each
    cost a pass about 3 ms of wall time per message). Yields how many are sent after each
    chunk; a chunk whose send fails raises, and may or may not have reached the queue."""
    with current_app.producer_or_acquire() as producer:
        for start in range(0, len(sends), SEND_CHUNK):
            chunk = sends[start : start + SEND_CHUNK]
            with producer.batch(max_size=len(chunk)):
                for options in chunk:
                    _send_trigger(producer=producer, **options)
            yield start + len(chunk)


def _send_trigger(*, args: list, **options: Any) -> None:
    """Send the trigger message by name (this module must not import ``captures.tasks``, nor
    may a web process have to). By name, Celery's default would ask the worker to store a
    result row per message: ask for none, as the task itself declares. The arguments'
    text for Flower is plain ``repr`` (a few numbers): Celery's ``saferepr`` of them was
    about a tenth of a send."""
    current_app.send_task(
        TRIGGER_TASK,
        args=args,
        argsrepr=repr(args),
        ignore_result=True,
        **options,
    )


def _due_epoch(tick: services.Tick) -> float:
    return tick.operation.tick_due_at(tick.number).timestamp()


def queued_triggers() -> int:
    """Messages waiting in the ``snmp`` queue (sent, not yet taken by a worker)."""
    with current_app.connection_for_read() as connection:
        channel: Any = connection.default_channel  # kombu types it without queue_declare
        # Not passive: before any snmp worker has declared it the queue does not exist yet.
        declared = channel.queue_declare(queue=Queue.SNMP.value)
    return int(declared.message_count)
