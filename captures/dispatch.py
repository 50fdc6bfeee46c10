"""Sending ticks to the snmp workers: one dispatcher for every running operation.

Beat runs ``captures.tasks.dispatch_ticks`` every second (seeded by a data migration). A
pass claims the due tick of every running operation in one locked read and one bulk
UPDATE (``services.claim_due_ticks``, rows keyed by ``Operation.next_tick_at``) and sends
one trigger task per tick, at a fixed rate from the start (the capture time does not
stretch the cycle, unlike PyPNM's sleep-then-capture loop).

Admission: while more than PNM_DISPATCH_MAX_QUEUED triggers wait in the ``snmp`` queue the
workers are saturated; the ticks beyond that room are counted missed at once
(``services.WORKERS_SATURATED``) instead of piling up to expire. A sent tick that still
waits past its interval is counted missed by the worker (``services.QUEUED_TOO_LONG``).
A single capture is not dispatched: its one tick is sent when its row is committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction

from captures import services
from config.queues import Queue

log = logging.getLogger(__name__)

TRIGGER_TASK = "captures.tasks.trigger_capture"


@dataclass(frozen=True)
class Dispatched:
    sent: int
    refused: int  # counted missed: the workers were saturated
    queued_before: int


def run_once(operation, label: str = "") -> None:
    """Send a single capture's one tick once its row is committed (the sweeper sends it
    again if it was lost: ``services.sweep``). ``label`` is the name Flower shows for the
    task (Celery's ``shadow``), e.g. the campaign it belongs to."""
    transaction.on_commit(
        lambda: current_app.send_task(TRIGGER_TASK, args=[operation.pk], shadow=label or None)
    )


def dispatch_due_ticks() -> Dispatched:
    """One dispatcher pass: claim the due ticks, send what the workers have room for,
    count the rest missed."""
    queued = queued_triggers()
    ticks = services.claim_due_ticks(limit=settings.PNM_DISPATCH_BATCH)
    room = max(0, settings.PNM_DISPATCH_MAX_QUEUED - queued)
    sent, refused = ticks[:room], ticks[room:]
    if sent:
        with current_app.producer_or_acquire() as producer:
            for tick in sent:
                operation = tick.operation
                current_app.send_task(
                    TRIGGER_TASK,
                    args=[operation.pk],
                    kwargs={"tick": tick.number, "due": _due_epoch(tick)},
                    shadow=f"operation {operation.operation_id} tick {tick.number}",
                    producer=producer,
                )
    for tick in refused:
        services.tick_lapsed(tick.operation.pk, tick.number, services.WORKERS_SATURATED)
    if refused:
        log.warning(
            "dispatch: %d ticks counted missed, %d triggers already queued for the snmp workers",
            len(refused),
            queued,
        )
    return Dispatched(sent=len(sent), refused=len(refused), queued_before=queued)


def _due_epoch(tick: services.Tick) -> float:
    return tick.operation.tick_due_at(tick.number).timestamp()


def queued_triggers() -> int:
    """Messages waiting in the ``snmp`` queue (sent, not yet taken by a worker)."""
    with current_app.connection_for_read() as connection:
        channel: Any = connection.default_channel  # kombu types it without queue_declare
        # Not passive: before any snmp worker has declared it the queue does not exist yet.
        declared = channel.queue_declare(queue=Queue.SNMP.value)
    return int(declared.message_count)
