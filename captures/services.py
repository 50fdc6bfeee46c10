"""The life of an operation, in plain functions that own their database transactions.

Everything an operation needs between ticks lives in its row (and its captures' rows):
workers, beat and the receiver can all restart without losing or duplicating anything.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from captures import schedules
from captures.models import (
    Capture,
    CaptureGroup,
    CaptureState,
    Operation,
    OperationState,
    Transaction,
)
from devices.models import CableModem

log = logging.getLogger(__name__)
Row = TypeVar("Row")

OPEN_CAPTURE_STATES = (CaptureState.PENDING, CaptureState.UPLOADED)


def one_or_none(queryset: QuerySet[Any, Row]) -> Row | None:
    """The row a primary-key filter selects, or None. Unlike ``first()`` this adds no
    ORDER BY (our models have a default ordering), which halves the cost of compiling the
    hot-path queries."""
    return next(iter(queryset.order_by()[:1]), None)


@dataclass(frozen=True)
class Tick:
    """A claimed tick of an operation: the trigger task's unit of work."""

    operation: Operation
    number: int
    final: bool


def start_operation(
    *,
    modem: CableModem,
    name: str,
    measure_mode: str,
    duration_s: int,
    sample_interval_s: int,
    channel_ids: list[int] | None = None,
) -> Operation:
    """Create the group, the running operation and its beat schedule, atomically."""
    now = timezone.now()
    with transaction.atomic():
        group = CaptureGroup.objects.create()
        operation = Operation.objects.create(
            name=name,
            measure_mode=measure_mode,
            modem=modem,
            capture_group=group,
            metadata={"mac_address": modem.mac_address, "system_description": {}},
            channel_ids=channel_ids or None,
            duration_s=duration_s,
            sample_interval_s=sample_interval_s,
            state=OperationState.RUNNING,
            started_at=now,
            ends_at=now + timedelta(seconds=duration_s),
            time_remaining=duration_s,
        )
        operation.expected = operation.total_ticks
        operation.save(update_fields=["expected"])
        schedules.install(operation)
    log.info("operation %s started on modem %s", operation.operation_id, modem.mac_address)
    return operation


def time_remaining(operation: Operation, now: datetime | None = None) -> int:
    """Seconds left: live while running, the persisted figure once terminal."""
    if operation.state != OperationState.RUNNING or operation.ends_at is None:
        return operation.time_remaining
    left = (operation.ends_at - (now or timezone.now())).total_seconds()
    return max(0, math.ceil(left))


def claim_tick(operation_pk: int, now: datetime | None = None) -> Tick | None:
    """Take the next tick of a running operation, or None when there is nothing to do.

    A tick delivered twice (within half an interval) and a tick after the final one are
    refused here, under the row lock, so they never reach the modem.
    """
    now = now or timezone.now()
    with transaction.atomic():
        operation = one_or_none(
            Operation.objects.select_for_update(of=("self",))
            .select_related("modem")
            .filter(pk=operation_pk)
        )
        if operation is None or operation.state != OperationState.RUNNING:
            return None
        if operation.ends_at is None:
            return None  # cannot be ticked; the sweeper fails it (NO_END_TIME)
        total = operation.total_ticks
        if operation.last_tick >= total:
            return None
        half_interval = timedelta(seconds=operation.sample_interval_s / 2)
        if operation.last_tick_at and now - operation.last_tick_at < half_interval:
            return None
        final = now >= operation.ends_at or operation.last_tick + 1 >= total
        number = total if final else operation.last_tick + 1
        operation.last_tick = number
        operation.last_tick_at = now
        operation.time_remaining = time_remaining(operation, now)
        operation.save(update_fields=["last_tick", "last_tick_at", "time_remaining", "updated"])
        if final:
            schedules.remove(operation)  # the final capture is the last one
    return Tick(operation, number, final)


def reclaim_tick(operation_pk: int, number: int) -> Tick | None:
    """For a retried tick: the tick again, unless the operation ended or moved on."""
    operation = one_or_none(
        Operation.objects.select_related("modem").filter(
            pk=operation_pk, state=OperationState.RUNNING, last_tick=number
        )
    )
    if operation is None:
        return None
    return Tick(operation, number, number >= operation.total_ticks)


def record_system_description(operation: Operation, description: dict) -> None:
    """Keep the sysDescr read once per operation, on the operation and the modem, and
    backfill transactions recorded before it was known."""
    now = timezone.now()
    with transaction.atomic():
        metadata = {**operation.metadata, "system_description": description}
        Operation.objects.filter(pk=operation.pk).update(metadata=metadata, updated=now)
        CableModem.objects.filter(pk=operation.modem_id).update(
            sys_descr="<<" + "; ".join(f"{k}: {v}" for k, v in description.items()) + ">>",
            hw_rev=description.get("HW_REV", ""),
            vendor=description.get("VENDOR", ""),
            bootr=description.get("BOOTR", ""),
            sw_rev=description.get("SW_REV", ""),
            model=description.get("MODEL", ""),
            sys_descr_updated=now,
        )
        Transaction.objects.filter(capture__operation=operation, device_details={}).update(
            device_details={"system_description": description}
        )
    operation.metadata = metadata


def update_metadata(operation: Operation, **values) -> None:
    """Merge ``values`` into the operation's metadata (None removes a key)."""
    with transaction.atomic():
        locked = Operation.objects.select_for_update().get(pk=operation.pk)
        metadata = {k: v for k, v in {**locked.metadata, **values}.items() if v is not None}
        Operation.objects.filter(pk=operation.pk).update(metadata=metadata)
    operation.metadata = metadata


def set_expected_channels(operation: Operation, channel_count: int) -> None:
    """Once the channels are known, the plan is ticks x channels (until it is final)."""
    if channel_count > 1:
        Operation.objects.filter(pk=operation.pk, state=OperationState.RUNNING).update(
            expected=operation.total_ticks * channel_count
        )


NAME_ATTEMPTS = 5


def create_capture(
    operation: Operation,
    tick: int,
    channel_id: int,
    if_index: int,
    file_name: str | Callable[[int], str],
) -> Capture | None:
    """The row for one expected file; None if this (tick, channel) was already triggered.

    ``file_name`` may be a function of a second offset: PyPNM-style names carry the epoch
    second, so a late tick landing in the same second as the next one takes the next
    free second instead of colliding.
    """
    now = timezone.now()
    deadline = now + timedelta(
        seconds=settings.PNM_MEASURE_DEADLINE_S + settings.PNM_UPLOAD_DEADLINE_S
    )
    names = file_name if callable(file_name) else lambda _offset: file_name
    for offset in range(NAME_ATTEMPTS):
        try:
            with transaction.atomic():
                return Capture.objects.create(
                    operation=operation,
                    tick=tick,
                    channel_id=channel_id,
                    if_index=if_index,
                    file_name=names(offset),
                    triggered_at=now,
                    deadline=deadline,
                )
        except IntegrityError:
            if Capture.objects.filter(operation=operation, tick=tick, channel_id=channel_id):
                return None
    raise IntegrityError(f"no free file name for {names(0)} after {NAME_ATTEMPTS} tries")


def tick_failed(operation_pk: int, reason: str, captures_failed: int = 0) -> Operation | None:
    """Count a failed tick; fail the operation after PNM_MAX_CONSECUTIVE_FAILURES in a row."""
    log.warning("operation pk=%s: %s", operation_pk, reason)
    with transaction.atomic():
        operation = one_or_none(Operation.objects.select_for_update().filter(pk=operation_pk))
        if operation is None or operation.is_terminal:
            return operation
        operation.consecutive_failures += 1
        operation.failed += captures_failed
        operation.last_error = reason
        operation.save(update_fields=["consecutive_failures", "failed", "last_error", "updated"])
        if operation.consecutive_failures >= settings.PNM_MAX_CONSECUTIVE_FAILURES:
            _finish(
                operation,
                OperationState.FAILED,
                f"{reason} ({operation.consecutive_failures} failures in a row)",
            )
    maybe_complete(operation_pk)
    return operation


def fail_capture(capture_pk: int, reason: str) -> bool:
    """Mark an open capture failed (no file, or a bad one) and count it; False if it was not
    open any more (already stored, failed or cancelled)."""
    capture = one_or_none(Capture.objects.filter(pk=capture_pk).only("operation_id"))
    if capture is None:
        return False
    changed = Capture.objects.filter(pk=capture_pk, state__in=OPEN_CAPTURE_STATES).update(
        state=CaptureState.FAILED, error=reason[:2000]
    )
    if changed:
        tick_failed(capture.operation_id, reason, captures_failed=1)
    return bool(changed)


def mark_uploaded(capture_pk: int, spool_path: str) -> bool:
    """The receiver holds the complete file; False if the capture no longer wants it."""
    return bool(
        Capture.objects.filter(pk=capture_pk, state=CaptureState.PENDING).update(
            state=CaptureState.UPLOADED, spool_path=spool_path
        )
    )


def final_tick_settled(operation_pk: int) -> bool:
    """The final tick's trigger is over; complete the operation if its files are in."""
    Operation.objects.filter(pk=operation_pk).update(final_tick_done=True)
    return maybe_complete(operation_pk)


def maybe_complete(operation_pk: int) -> bool:
    """Complete a running operation whose final tick ran and whose files all settled."""
    with transaction.atomic():
        operation = one_or_none(Operation.objects.select_for_update().filter(pk=operation_pk))
        if operation is None or operation.state != OperationState.RUNNING:
            return False
        if not operation.final_tick_done:
            return False
        if operation.captures.filter(state__in=OPEN_CAPTURE_STATES).exists():
            return False
        if operation.collected == 0 and operation.last_error:
            # Not one file in the whole run: that is a failure, whatever the count.
            _finish(operation, OperationState.FAILED, operation.last_error)
        else:
            _finish(operation, OperationState.COMPLETED, "")
    return True


def stop_operation(operation: Operation) -> bool:
    """Stop a running operation now: no more ticks, no final capture (as PyPNM)."""
    with transaction.atomic():
        locked = Operation.objects.select_for_update().get(pk=operation.pk)
        if locked.is_terminal:
            return False
        _finish(locked, OperationState.STOPPED, "")
    return True


def _finish(operation: Operation, state: str, error: str) -> None:
    """Persist the final state and counters, drop the schedule and open captures.

    Runs inside the caller's transaction with the operation row locked.
    """
    now = timezone.now()
    if state != OperationState.COMPLETED:
        operation.captures.filter(state__in=OPEN_CAPTURE_STATES).update(
            state=CaptureState.CANCELLED, error=f"operation {state}"
        )
    operation.time_remaining = 0 if state == OperationState.COMPLETED else time_remaining(operation)
    operation.state = state
    operation.finished_at = now
    if operation.last_tick:
        operation.expected = operation.captures.count()
    if error:
        operation.last_error = error
    operation.save(
        update_fields=[
            "state",
            "finished_at",
            "time_remaining",
            "expected",
            "last_error",
            "updated",
        ]
    )
    schedules.remove(operation)
    log.info(
        "operation %s %s: %d collected, %d failed",
        operation.operation_id,
        state,
        operation.collected,
        operation.failed,
    )


NO_END_TIME = (
    "running without an end time (ends_at is empty), so its ticks cannot be scheduled "
    "or finished; failed by the sweeper"
)


@dataclass
class SweepResult:
    expired: int = 0
    failed: int = 0  # running operations that could not go on (no end time)
    rescheduled: int = 0
    completed: int = 0
    late_final: list[int] = field(default_factory=list)  # final tick must run now
    restage: list[int] = field(default_factory=list)  # uploaded captures whose staging was lost


def sweep(now: datetime | None = None, limit: int = 1000) -> SweepResult:
    """The sweeper's work: expire overdue captures, restore lost schedules, find
    operations whose final tick was lost and uploads whose staging was lost.
    Idempotent, so two sweeps at once do no harm."""
    now = now or timezone.now()
    result = SweepResult()
    lost_tick_after = timedelta(seconds=4 * settings.PNM_MEASURE_DEADLINE_S + 60)
    overdue = Capture.objects.filter(state=CaptureState.PENDING, deadline__lt=now)
    for capture_pk, file_name in overdue.values_list("pk", "file_name")[:limit]:
        if fail_capture(capture_pk, f"upload of {file_name} not received by its deadline"):
            result.expired += 1
    stuck = Capture.objects.filter(state=CaptureState.UPLOADED, deadline__lt=now)
    result.restage = list(stuck.values_list("pk", flat=True)[:limit])
    scheduled = schedules.installed_names()
    for operation in Operation.objects.filter(state=OperationState.RUNNING).iterator():
        if operation.final_tick_done:
            result.completed += maybe_complete(operation.pk)
        elif operation.last_tick >= operation.total_ticks:
            claimed_at = operation.last_tick_at
            if claimed_at is None or now >= claimed_at + lost_tick_after:  # worker died mid-tick
                result.completed += final_tick_settled(operation.pk)
        elif operation.ends_at is None:
            result.failed += _fail_running(operation.pk, NO_END_TIME)
        elif now >= operation.ends_at + timedelta(seconds=2 * operation.sample_interval_s):
            result.late_final.append(operation.pk)
        elif operation.schedule_name not in scheduled:
            schedules.install(operation)
            result.rescheduled += 1
    return result


def _fail_running(operation_pk: int, reason: str) -> bool:
    """Fail an operation that is still running, with ``reason`` as its last_error."""
    with transaction.atomic():
        locked = one_or_none(Operation.objects.select_for_update().filter(pk=operation_pk))
        if locked is None or locked.state != OperationState.RUNNING:
            return False
        _finish(locked, OperationState.FAILED, reason)
    return True
