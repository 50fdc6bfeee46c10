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
from django.db.models import F, QuerySet
from django.utils import timezone

from captures import schedules
from captures.models import (
    Capture,
    CaptureGroup,
    CaptureState,
    ChannelTally,
    Operation,
    OperationState,
    Outcome,
    OutcomeReason,
    Transaction,
)
from core import locks
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
        # The plan: fixed here, never rewritten (``expected`` is refined once, by
        # ``plan_channels``, when the channel list is known).
        operation.planned_ticks = operation.expected = operation.total_ticks
        operation.save(update_fields=["planned_ticks", "expected"])
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
        if number > operation.last_tick + 1:  # their time passed without being dispatched
            _tally(operation.pk, Outcome.MISSED, NOT_DISPATCHED, number - operation.last_tick - 1)
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


def plan_channels(operation: Operation, available: list[int]) -> list[int]:
    """The channels this operation captures on every tick: fixed the first time the
    modem's channel list is read (``available``, already narrowed to the requested ones),
    with what the ticks settled before that already counted on the channel-less row."""
    planned = _planned_channels(operation.pk)
    if planned or not available:
        return planned
    with transaction.atomic():
        locked = one_or_none(Operation.objects.select_for_update().filter(pk=operation.pk))
        planned = _planned_channels(operation.pk)
        if locked is None or planned:
            return planned
        early = sum(
            ChannelTally.objects.filter(operation=locked, channel_id=None).values_list(
                "planned", flat=True
            )
        )
        each = locked.planned_ticks - early
        ChannelTally.objects.bulk_create(
            ChannelTally(operation=locked, channel_id=channel_id, planned=each)
            for channel_id in available
        )
        locked.expected = early + each * len(available)
        locked.save(update_fields=["expected", "updated"])
    return sorted(available)


def _planned_channels(operation_pk: int) -> list[int]:
    planned = (
        ChannelTally.objects.filter(operation_id=operation_pk, channel_id__isnull=False)
        .order_by("channel_id")
        .values_list("channel_id", flat=True)
    )
    return [channel_id for channel_id in planned if channel_id is not None]


NOT_DISPATCHED = "not dispatched in time"
MODEM_BUSY = "modem busy"
CMTS_FULL = "CMTS at its in-flight cap"
NEVER_SETTLED = "never settled (its worker was lost)"
WORKER_LOST = "WorkerLost"


def modem_lock_key(modem_pk: int) -> str:
    """The per-modem lease (``core.locks``) a tick holds while it measures."""
    return f"pnm:modem-lock:{modem_pk}"


def tick_in_flight(operation_pk: int, tick: int, lease: str) -> None:
    """``tick`` is measuring under the modem lease ``lease``: if that lease runs out before
    ``tick_over``, the sweeper settles the tick (``abandon_lost_ticks``)."""
    Operation.objects.filter(pk=operation_pk).update(inflight_tick=tick, inflight_lease=lease)


def tick_over(operation_pk: int, lease: str, *, final: bool) -> None:
    """The poll chain of the tick measuring under ``lease`` ended by itself."""
    Operation.objects.filter(pk=operation_pk, inflight_lease=lease).update(
        inflight_tick=None, inflight_lease=""
    )
    if final:
        final_tick_settled(operation_pk)


def abandon_lost_ticks(limit: int = 1000) -> int:
    """Settle the ticks whose poll chain stopped renewing its modem lease (its worker was
    killed, or stalled beyond PNM_LEASE_TTL_S): their open captures and the channels they
    had not triggered yet fail as ``WorkerLost``. Returns the ticks settled."""
    inflight = list(
        Operation.objects.filter(state=OperationState.RUNNING, inflight_tick__isnull=False)
        .exclude(inflight_lease="")
        .values_list("pk", "modem_id", "inflight_tick", "inflight_lease")[:limit]
    )
    held = locks.holders([modem_lock_key(modem_pk) for _, modem_pk, _, _ in inflight])
    abandoned = 0
    for operation_pk, modem_pk, tick, lease in inflight:
        if tick is not None and held[modem_lock_key(modem_pk)] != lease:
            abandoned += _abandon_tick(operation_pk, tick, lease)
    return abandoned


def _abandon_tick(operation_pk: int, tick: int, lease: str) -> bool:
    reason = (
        f"tick {tick} abandoned: its modem lease was not renewed within PNM_LEASE_TTL_S "
        f"({settings.PNM_LEASE_TTL_S:g} s); its worker died or stalled, or Redis lost the lease"
    )
    with transaction.atomic():
        operation = one_or_none(
            Operation.objects.select_for_update().filter(
                pk=operation_pk, state=OperationState.RUNNING, inflight_lease=lease
            )
        )
        if operation is None:
            return False  # its chain ended meanwhile, or a later tick took over
        operation.inflight_tick, operation.inflight_lease = None, ""
        operation.last_error = reason
        operation.save(update_fields=["inflight_tick", "inflight_lease", "last_error", "updated"])
        failed = [
            channel_id
            for capture_pk, channel_id in Capture.objects.filter(
                operation_id=operation_pk, tick=tick, state=CaptureState.PENDING
            ).values_list("pk", "channel_id")
            if Capture.objects.filter(pk=capture_pk, state=CaptureState.PENDING).update(
                state=CaptureState.FAILED, error=reason
            )
        ]
        failed += _untriggered(operation_pk, tick) or []
        if failed:
            _tally(operation_pk, Outcome.FAILED, WORKER_LOST, channel_ids=failed)
    log.warning("operation %s: %s", operation.operation_id, reason)
    if tick >= operation.total_ticks:
        final_tick_settled(operation_pk)
    return True


def _tally(
    operation_pk: int,
    outcome: str,
    reason: str,
    ticks: int = 1,
    channel_ids: list[int] | None = None,
) -> int:
    """Count ``ticks`` ticks of ``outcome`` on ``channel_ids`` (None: every planned channel,
    or the channel-less row while no channel is planned). Returns the captures counted.

    Counts only while the operation runs: the row lock this takes orders it with
    ``_finish``, which settles whatever is left. Runs in the caller's transaction.
    """
    with transaction.atomic():
        if not _lock_running(operation_pk):
            return 0
        if channel_ids is None:
            channel_ids = _planned_channels(operation_pk)
            if not channel_ids:
                row, _ = ChannelTally.objects.get_or_create(
                    operation_id=operation_pk, channel_id=None
                )
                ChannelTally.objects.filter(pk=row.pk).update(
                    planned=F("planned") + ticks, **{outcome: F(outcome) + ticks}
                )
                return _count_operation(operation_pk, outcome, reason, ticks)
        ChannelTally.objects.filter(operation_id=operation_pk, channel_id__in=channel_ids).update(
            **{outcome: F(outcome) + ticks}
        )
        return _count_operation(operation_pk, outcome, reason, ticks * len(channel_ids))


def _count_operation(operation_pk: int, outcome: str, reason: str, count: int) -> int:
    if not count:
        return 0
    Operation.objects.filter(pk=operation_pk).update(
        **{outcome: F(outcome) + count}, updated=timezone.now()
    )
    if reason:
        reason = reason[:80]
        bumped = OutcomeReason.objects.filter(
            operation_id=operation_pk, outcome=outcome, reason=reason
        ).update(count=F("count") + count)
        if not bumped:  # first of its kind; the operation row lock makes this the only one
            OutcomeReason.objects.create(
                operation_id=operation_pk, outcome=outcome, reason=reason, count=count
            )
    return count


def _lock_running(operation_pk: int) -> bool:
    """Lock the operation's row (until the transaction ends) if it is running."""
    running = Operation.objects.select_for_update().filter(
        pk=operation_pk, state=OperationState.RUNNING
    )
    return bool(list(running.values_list("pk", flat=True)))


def _untriggered(operation_pk: int, tick: int) -> list[int] | None:
    """The planned channels of ``tick`` that have no capture (None: none planned yet)."""
    planned = _planned_channels(operation_pk)
    if not planned:
        return None
    captured = set(
        Capture.objects.filter(operation_id=operation_pk, tick=tick).values_list(
            "channel_id", flat=True
        )
    )
    return [channel_id for channel_id in planned if channel_id not in captured]


def capture_triggered(capture: Capture) -> None:
    """The modem accepted the trigger of ``capture``."""
    _tally(capture.operation_id, Outcome.TRIGGERED, "", channel_ids=[capture.channel_id])


def capture_collected(capture: Capture) -> None:
    """``capture``'s file is stored: counted, and the failures in a row are over."""
    if _tally(capture.operation_id, Outcome.COLLECTED, "", channel_ids=[capture.channel_id]):
        Operation.objects.filter(pk=capture.operation_id).update(consecutive_failures=0)


def tick_skipped(operation_pk: int, tick: int, reason: str = MODEM_BUSY) -> None:
    """The tick did not run (the modem was busy): its untriggered channels are skipped."""
    _tick_not_run(operation_pk, tick, Outcome.SKIPPED, reason)


def tick_missed(operation_pk: int, tick: int, reason: str) -> None:
    """The tick could not be admitted (its CMTS was at its cap): its untriggered channels
    are missed."""
    _tick_not_run(operation_pk, tick, Outcome.MISSED, reason)


def _tick_not_run(operation_pk: int, tick: int, outcome: str, reason: str) -> None:
    log.info("operation pk=%s tick %s %s: %s", operation_pk, tick, outcome, reason)
    channel_ids = _untriggered(operation_pk, tick)
    if channel_ids != []:
        _tally(operation_pk, outcome, reason, channel_ids=channel_ids)


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
                # Under the operation's row lock: ``_finish`` either sees this capture (and
                # cancels it) or comes first (and none is made).
                if not _lock_running(operation.pk):
                    return None
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


def tick_failed(
    operation_pk: int,
    reason: str,
    kind: str,
    *,
    tick: int | None = None,
    channel_ids: list[int] | None = None,
) -> Operation | None:
    """Count a failure of ``kind`` (an error class) on ``channel_ids``, or on the channels
    ``tick`` had not triggered yet; fail the operation after PNM_MAX_CONSECUTIVE_FAILURES
    failures in a row. Only a counted failure sets ``last_error``."""
    log.warning("operation pk=%s: %s", operation_pk, reason)
    with transaction.atomic():
        operation = one_or_none(Operation.objects.select_for_update().filter(pk=operation_pk))
        if operation is None or operation.is_terminal:
            return operation
        if channel_ids is None and tick is not None:
            channel_ids = _untriggered(operation_pk, tick)
        if channel_ids != []:
            _tally(operation_pk, Outcome.FAILED, kind, channel_ids=channel_ids)
        operation.refresh_from_db()
        operation.consecutive_failures += 1
        operation.last_error = reason
        operation.save(update_fields=["consecutive_failures", "last_error", "updated"])
        if operation.consecutive_failures >= settings.PNM_MAX_CONSECUTIVE_FAILURES:
            _finish(
                operation,
                OperationState.FAILED,
                f"{reason} ({operation.consecutive_failures} failures in a row)",
            )
    maybe_complete(operation_pk)
    return operation


def fail_capture(capture_pk: int, reason: str, kind: str) -> bool:
    """Mark an open capture failed (no file, or a bad one) and count it as ``kind``; False
    if it was not open any more (already stored, failed or cancelled)."""
    capture = one_or_none(Capture.objects.filter(pk=capture_pk).only("operation_id", "channel_id"))
    if capture is None:
        return False
    changed = Capture.objects.filter(pk=capture_pk, state__in=OPEN_CAPTURE_STATES).update(
        state=CaptureState.FAILED, error=reason[:2000]
    )
    if changed:
        tick_failed(capture.operation_id, reason, kind, channel_ids=[capture.channel_id])
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


def maybe_complete(operation_pk: int, give_up: bool = False) -> bool:
    """Complete a running operation once its final tick ran and every planned capture has
    settled (stored, skipped, missed or failed): no capture can land after completion.

    ``give_up`` (the sweeper, long after the last tick): what never settled although no
    capture is open any more was lost with its worker; count it missed.
    """
    with transaction.atomic():
        operation = one_or_none(Operation.objects.select_for_update().filter(pk=operation_pk))
        if operation is None or operation.state != OperationState.RUNNING:
            return False
        if not operation.final_tick_done:
            return False
        if operation.captures.filter(state__in=OPEN_CAPTURE_STATES).exists():
            return False
        if operation.settled < operation.expected:
            if not give_up:
                return False  # a tick is still on its way
            _settle_rest(operation, Outcome.MISSED, NEVER_SETTLED)
            operation.refresh_from_db()
        if operation.collected == 0 and operation.failed:
            # Not one file in the whole run: that is a failure, whatever the count.
            _finish(operation, OperationState.FAILED, operation.last_error)
        elif operation.collected < operation.expected:
            _finish(operation, OperationState.COMPLETED_PARTIAL, "")
        else:
            _finish(operation, OperationState.COMPLETED, "")
    return True


def _settle_rest(operation: Operation, outcome: str, reason: str) -> None:
    """Count every planned capture without an outcome yet as ``outcome``: the ones the
    operation will never run. Runs with the operation row locked."""
    rows = list(operation.channels.all())
    if not any(row.channel_id is not None for row in rows):
        early = sum(row.planned for row in rows)
        if operation.planned_ticks > early:
            _tally(operation.pk, outcome, reason, operation.planned_ticks - early)
        return
    for row in rows:
        # (a channel-less row holds no ticks once channels are known)
        if row.channel_id is not None and row.planned > row.settled:
            _tally(operation.pk, outcome, reason, row.planned - row.settled, [row.channel_id])


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
    ran_to_end = state in (OperationState.COMPLETED, OperationState.COMPLETED_PARTIAL)
    if not ran_to_end:
        operation.captures.filter(state__in=OPEN_CAPTURE_STATES).update(
            state=CaptureState.CANCELLED, error=f"operation {state}"
        )
        _settle_rest(operation, Outcome.CANCELLED, f"operation {state}")
    operation.time_remaining = 0 if ran_to_end else time_remaining(operation)
    operation.state = state
    operation.finished_at = now
    if error:
        operation.last_error = error
    operation.save(
        update_fields=["state", "finished_at", "time_remaining", "last_error", "updated"]
    )
    schedules.remove(operation)
    operation.refresh_from_db()
    log.info(
        "operation %s %s: %d of %d planned captures collected; skipped %d, missed %d, "
        "failed %d, cancelled %d",
        operation.operation_id,
        state,
        operation.collected,
        operation.expected,
        operation.skipped,
        operation.missed,
        operation.failed,
        operation.cancelled,
    )


UPLOAD_TIMEOUT = "UploadTimeout"

NO_END_TIME = (
    "running without an end time (ends_at is empty), so its ticks cannot be scheduled "
    "or finished; failed by the sweeper"
)


@dataclass
class SweepResult:
    abandoned: int = 0  # ticks whose poll chain died (``abandon_lost_ticks``)
    expired: int = 0
    failed: int = 0  # running operations that could not go on (no end time)
    rescheduled: int = 0
    completed: int = 0
    late_final: list[int] = field(default_factory=list)  # final tick must run now
    restage: list[int] = field(default_factory=list)  # uploaded captures whose staging was lost


def sweep(now: datetime | None = None, limit: int = 1000) -> SweepResult:
    """The sweeper's work: settle ticks whose worker died, expire overdue captures, restore
    lost schedules, find operations whose final tick was lost and uploads whose staging
    was lost.
    Idempotent, so two sweeps at once do no harm."""
    now = now or timezone.now()
    result = SweepResult(abandoned=abandon_lost_ticks(limit))
    lost_tick_after = timedelta(seconds=4 * settings.PNM_MEASURE_DEADLINE_S + 60)
    overdue = Capture.objects.filter(state=CaptureState.PENDING, deadline__lt=now)
    for capture_pk, file_name in overdue.values_list("pk", "file_name")[:limit]:
        reason = f"upload of {file_name} not received by its deadline"
        if fail_capture(capture_pk, reason, UPLOAD_TIMEOUT):
            result.expired += 1
    stuck = Capture.objects.filter(state=CaptureState.UPLOADED, deadline__lt=now)
    result.restage = list(stuck.values_list("pk", flat=True)[:limit])
    scheduled = schedules.installed_names()
    for operation in Operation.objects.filter(state=OperationState.RUNNING).iterator():
        claimed_at = operation.last_tick_at
        lost = claimed_at is None or now >= claimed_at + lost_tick_after  # worker died mid-tick
        if operation.final_tick_done or operation.last_tick >= operation.total_ticks:
            if lost:
                Operation.objects.filter(pk=operation.pk).update(final_tick_done=True)
            if operation.final_tick_done or lost:
                result.completed += maybe_complete(operation.pk, give_up=lost)
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
