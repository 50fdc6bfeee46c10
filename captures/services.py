"""The life of an operation, in plain functions that own their database transactions.

Everything an operation needs between ticks lives in its row (and its captures' rows):
workers, beat and the receiver can all restart without losing or duplicating anything.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Field, QuerySet
from django.utils import timezone

from captures import dispatch, plans, signals
from captures.models import (
    OPERATION_TEST,
    SETTLED_OUTCOMES,
    Capture,
    CaptureGroup,
    CaptureState,
    ChannelTally,
    MeasureMode,
    Operation,
    OperationState,
    Outcome,
    OutcomeReason,
    Transaction,
)
from core import locks
from core.rows import (
    Change,
    add_together,
    insert_rows,
    insert_rows_locking,
    load_all,
    load_all_with,
    load_one,
    load_one_with,
    row_keys,
    update_returning,
    update_rows,
    update_where,
)
from devices.links import pnm
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


def start_operation(*, modem: CableModem, label: str = "", **plan: Any) -> Operation:
    """Create the group and the running operation, its first tick due now (a single
    capture's one tick is sent at once instead), atomically. ``plan``: as
    ``start_operations``; ``label``: a single capture's task name in Flower."""
    (operation,) = start_operations([(modem, label)], **plan)
    return operation


def start_operations(
    modems: Sequence[tuple[CableModem, str]],
    *,
    name: str,
    measure_mode: str,
    duration_s: int,
    sample_interval_s: int,
    test: str = "",
    parameters: dict | None = None,
    channel_ids: list[int] | None = None,
    summarise_files: bool = False,
) -> list[Operation]:
    """One operation of the same plan on each of ``modems`` (with its label), in one
    transaction: one INSERT of their groups and one of the operations, however many (a
    campaign's dispatcher pass starts them together). ``test``: the family's own unless
    given (a single capture's); ``parameters``: per trigger test, as
    ``pnm.validate_parameters`` completed them; ``summarise_files``: staging keeps each
    file's summary part (a campaign's)."""
    now = timezone.now()
    with transaction.atomic():
        groups = insert_rows([CaptureGroup() for _ in modems])
        operations = [
            Operation(
                name=name,
                measure_mode=measure_mode,
                test=test or OPERATION_TEST[name].value,
                parameters=parameters or {},
                modem=modem,
                capture_group=group,
                metadata={"mac_address": modem.mac_address, "system_description": {}},
                summarise_files=summarise_files,
                channel_ids=channel_ids or None,
                duration_s=duration_s,
                sample_interval_s=sample_interval_s,
                state=OperationState.RUNNING,
                started_at=now,
                ends_at=now + timedelta(seconds=duration_s),
                time_remaining=duration_s,
            )
            for (modem, _), group in zip(modems, groups, strict=True)
        ]
        for operation in operations:
            # The plan: fixed here, never rewritten (``expected`` is refined once, by
            # ``plan_channels``, when the channel list is known).
            operation.planned_ticks = operation.expected = operation.total_ticks
            if operation.measure_mode == MeasureMode.SINGLE:
                # Its one tick, claimed in this INSERT (as the dispatcher claims a periodic
                # one) and sent once committed: the worker only reads it back.
                operation.last_tick, operation.last_tick_at = 1, now
            else:
                operation.next_tick_at = now  # the dispatcher (``captures.dispatch``) sends it
        insert_rows(operations)
        if measure_mode == MeasureMode.SINGLE:  # their one tick each, once committed
            dispatch.run_once(
                [
                    (operation, label)
                    for operation, (_, label) in zip(operations, modems, strict=True)
                ]
            )
    for operation in operations:
        log.info(
            "operation %s started on modem %s", operation.operation_id, operation.modem.mac_address
        )
    return operations


def time_remaining(operation: Operation, now: datetime | None = None) -> int:
    """Seconds left: live while running, the persisted figure once terminal."""
    if operation.state != OperationState.RUNNING or operation.ends_at is None:
        return operation.time_remaining
    left = (operation.ends_at - (now or timezone.now())).total_seconds()
    return max(0, math.ceil(left))


def claim_tick(operation_pk: int, now: datetime | None = None) -> Tick | None:
    """Claim the tick due now of one operation, outside the dispatcher: a final tick the
    sweeper found unclaimed. None when nothing is due (a tick delivered twice is refused
    here, under the row lock, so it never reaches the modem)."""
    now = now or timezone.now()
    with transaction.atomic():
        operation = running_operation(operation_pk, lock=True)
        ticks = _advance([operation] if operation is not None else [], now)
    return ticks[0] if ticks else None


def claim_due_ticks(now: datetime | None = None, limit: int = 1000) -> list[Tick]:
    """Claim the due ticks of up to ``limit`` running operations (the dispatcher's pass), in
    a few statements for all of them: the operations served longest ago first, and only
    ticks still fresh (due at most half their ``tick_grace_s`` ago; a final tick always),
    so that what is sent can start in its time. A stale tick stays unclaimed until the
    operation's next one is due, which counts it missed. Rows another pass holds are
    skipped, so two passes at once never claim a tick twice.

    Above capacity most running operations are due at every pass: their freshness is judged
    on the few columns it needs, and only the ``limit`` chosen are locked and loaded whole
    (not every due row, JSON metadata included, once a second)."""
    now = now or timezone.now()
    served_longest_ago = F("last_tick_at").asc(nulls_first=True)
    due = Operation.objects.filter(state=OperationState.RUNNING, next_tick_at__lte=now)
    candidates = due.order_by(served_longest_ago).only(*FRESHNESS_FIELDS)
    chosen = [
        operation.pk
        for operation in candidates[: settings.PNM_DISPATCH_BATCH]
        if _fresh(operation, now)
    ][:limit]
    if not chosen:
        return []
    with transaction.atomic():
        locked = (
            due.filter(pk__in=chosen)
            .select_for_update(skip_locked=True)
            .order_by(served_longest_ago)
        )
        return _advance(list(locked), now)


FRESHNESS_FIELDS = ("started_at", "ends_at", "sample_interval_s", "duration_s", "measure_mode")


def _fresh(operation: Operation, now: datetime) -> bool:
    if operation.started_at is None or operation.ends_at is None:
        return True  # _advance leaves it; the sweeper fails it
    number = operation.tick_due_by(now)
    late = (now - operation.tick_due_at(number)).total_seconds()
    return number >= operation.total_ticks or late <= tick_grace_s(operation) / 2


TICK_GRACE_MIN_S = 3.0


def tick_grace_s(operation: Operation) -> float:
    """How late a tick may start and still run: its interval, and at least
    TICK_GRACE_MIN_S (the dispatcher passes once a second: a 1 s interval must not make
    every tick stale by the time it is claimed)."""
    return max(float(operation.sample_interval_s), TICK_GRACE_MIN_S)


def _advance(operations: list[Operation], now: datetime) -> list[Tick]:
    """Move locked running operations to the tick due at ``now`` and save that; the ticks
    whose time passed unclaimed are counted missed (``not dispatched in time``). Operations
    with no new tick due are left as they are."""
    ticks, gaps = [], []
    for operation in operations:
        if operation.ends_at is None or operation.started_at is None:
            continue  # cannot be ticked; the sweeper fails it (NO_END_TIME)
        number = operation.tick_due_by(now)
        if number <= operation.last_tick:
            continue
        if number > operation.last_tick + 1:
            gaps.append((operation, range(operation.last_tick + 1, number)))
        total = operation.total_ticks
        operation.last_tick = number
        operation.last_tick_at = operation.updated = now
        operation.next_tick_at = operation.tick_due_at(number + 1) if number < total else None
        operation.time_remaining = time_remaining(operation, now)
        ticks.append(Tick(operation, number, number >= total))
    _count_whole_ticks(gaps, Outcome.MISSED, NOT_DISPATCHED)
    update_rows([tick.operation for tick in ticks], ADVANCED_FIELDS)
    return ticks


ADVANCED_FIELDS = ["last_tick", "last_tick_at", "next_tick_at", "time_remaining", "updated"]


def tick_lapsed(operation_pk: int, tick: int, reason: str) -> None:
    """A claimed tick that never ran (it waited in the queue past its grace, a later tick
    was dispatched first, or it was never sent): its untriggered captures are missed."""
    operation = load_one(Operation, {"id": operation_pk, "state": OperationState.RUNNING})
    if operation is not None:
        claimed_tick_lapsed(Tick(operation, tick, tick >= operation.total_ticks), reason)


def claimed_tick_lapsed(tick: Tick, reason: str) -> None:
    """``tick_lapsed`` for a tick whose running operation the caller has just read."""
    _tick_not_run(tick.operation, tick.number, Outcome.MISSED, reason)
    if tick.final:
        final_tick_settled(tick.operation.pk)


def reclaim_ticks(numbers: Mapping[int, int]) -> dict[int, Tick]:
    """The claimed ticks a worker was sent (tick ``numbers`` by operation key), read back
    in one query, their modems loaded: by operation key, leaving out those whose operation
    ended or moved on."""
    running = {"id": list(numbers), "state": OperationState.RUNNING}
    return {
        operation.pk: Tick(
            operation, operation.last_tick, operation.last_tick >= operation.total_ticks
        )
        for operation in load_all_with(Operation, running, "modem")
        if operation.last_tick == numbers[operation.pk]
    }


def running_operation(operation_pk: int, *, lock: bool = False) -> Operation | None:
    """The operation if it is running, its modem loaded: what a claim or a poll task reads
    first. One query, without the ORM's compile
    (``core.rows.load_one_with``; ``select_related`` cost a fifth of an snmp worker's CPU);
    None if either is gone. ``lock``: the operation row locked, in that same query."""
    running = {"id": operation_pk, "state": OperationState.RUNNING}
    return load_one_with(Operation, running, "modem", lock=lock)


def update_metadata(operation: Operation, **values) -> None:
    """Merge ``values`` into the operation's metadata (None removes a key)."""
    with transaction.atomic():
        locked = load_one(Operation, {"id": operation.pk}, lock=True)
        if locked is None:
            raise Operation.DoesNotExist(f"operation pk={operation.pk} is gone")
        metadata = {k: v for k, v in {**locked.metadata, **values}.items() if v is not None}
        update_where(Operation, {"id": operation.pk}, {"metadata": metadata})
    operation.metadata = metadata


Slot = tuple[str, int]  # (file test type, channel id): one planned capture per tick


def _slots_of(tallies: list[ChannelTally]) -> list[Slot]:
    """The planned slots among an operation's channel rows, sorted (the channel-less row,
    before the channels are known, plans none)."""
    return sorted((row.test, row.channel_id) for row in tallies if row.channel_id is not None)


def test_slots(test: pnm.PnmTest, channel_ids: list[int]) -> list[Slot]:
    """The captures one trigger of ``test`` asks for on each of ``channel_ids``."""
    return [(spec.test_type, channel_id) for channel_id in channel_ids for spec in test.files]


def plan_slots(
    operation: Operation,
    available: dict[pnm.PnmTest, list[int]],
    *,
    description: dict | None = None,
    walked: dict[str, list[list[int]]] | None = None,
) -> list[Slot]:
    """The slots this operation captures: fixed the first time the modem's channels are
    read (``available``, per test, already narrowed to the requested ones), each planned
    for the ticks whose plan (``captures.plans``) holds its test, minus the ticks the
    channel-less row already counted (ticks 1..early).

    What the first tick read of the modem goes in the same transaction: ``description``
    (its sysDescr, kept on the operation and the modem, and backfilled on transactions
    recorded before it was known) and ``walked`` (the channels of the scopes walked now,
    merged into the operation's metadata). One transaction per operation's setup, where
    there were three (a campaign pays it once per modem).
    """
    if not (description or walked):
        planned = _planned_slots(operation)
        if planned or not any(available.values()):
            return planned
    now = timezone.now()
    with transaction.atomic():
        locked = load_one(Operation, {"id": operation.pk}, lock=True)
        if locked is None:
            raise Operation.DoesNotExist(f"operation pk={operation.pk} is gone")
        metadata = dict(locked.metadata)
        if description:
            metadata["system_description"] = description
            _record_description(operation, description, now, backfill=locked.collected > 0)
        if walked:
            metadata["channels"] = {**metadata.get("channels", {}), **walked}
        values: dict[str, Any] = {"metadata": metadata} if description or walked else {}
        if any(available.values()):
            planned, expected = _plan(operation, available)
            if expected is not None:
                values["expected"] = expected
            fixed = list(planned)
            transaction.on_commit(lambda: _remember_plan(operation, fixed))
        else:
            planned = _planned_slots(operation)
        if values:
            update_where(Operation, {"id": operation.pk}, {**values, "updated": now})
    operation.metadata = metadata
    return planned


def _record_description(
    operation: Operation, description: dict, now: datetime, *, backfill: bool
) -> None:
    """Keep the modem's sysDescr on its row; ``backfill``: also on the operation's
    transactions stored without it (none can be while nothing was collected: a file's
    transaction and its count are written together, under the row lock held here)."""
    update_where(
        CableModem,
        {"id": operation.modem_id},
        {
            "sys_descr": "<<" + "; ".join(f"{k}: {v}" for k, v in description.items()) + ">>",
            "hw_rev": description.get("HW_REV", ""),
            "vendor": description.get("VENDOR", ""),
            "bootr": description.get("BOOTR", ""),
            "sw_rev": description.get("SW_REV", ""),
            "model": description.get("MODEL", ""),
            "sys_descr_updated": now,
        },
    )
    if backfill:
        Transaction.objects.filter(capture__operation=operation, device_details={}).update(
            device_details={"system_description": description}
        )


def _plan(
    operation: Operation, available: dict[pnm.PnmTest, list[int]]
) -> tuple[list[Slot], int | None]:
    """Insert the plan's channel rows unless another tick did (under the operation's row
    lock): the slots, and the operation's new ``expected`` (None: the plan was there)."""
    tallies = load_all(ChannelTally, {"operation_id": operation.pk})
    planned = _slots_of(tallies)
    if planned:
        return planned, None
    early = sum(row.planned for row in tallies if row.channel_id is None)
    counts = plans.test_counts(operation, range(early + 1, operation.total_ticks + 1))
    rows = [
        ChannelTally(operation=operation, test=slot_test, channel_id=channel_id, planned=count)
        for test, channel_ids in available.items()
        if (count := counts[test])
        for slot_test, channel_id in test_slots(test, sorted(channel_ids))
    ]
    insert_rows(rows)
    return _slots_of(rows), early + sum(row.planned for row in rows)


def _planned_slots(operation: Operation) -> list[Slot]:
    """The operation's planned (test, channel) slots, [] before they are known. A plan is
    fixed once made, so this process remembers it (every tick asked for it: a query and a
    seventh of an snmp worker's CPU); keyed by the operation's random id as well as its
    pk, which SQLite may give again after a delete."""
    key = (operation.pk, operation.operation_id)
    known = _plans.get(key)
    if known is not None:
        return list(known)
    planned = _slots_of(load_all(ChannelTally, {"operation_id": operation.pk}))
    _remember_plan(operation, planned)
    return planned


def _remember_plan(operation: Operation, planned: list[Slot]) -> None:
    if planned:
        if len(_plans) >= _PLANS_KEPT:
            _plans.clear()
        _plans[(operation.pk, operation.operation_id)] = tuple(planned)


_plans: dict[tuple[int, str], tuple[Slot, ...]] = {}
_PLANS_KEPT = 10_000


NOT_DISPATCHED = "not dispatched in time"
QUEUED_TOO_LONG = "waited in the queue past its time"
MODEM_BUSY = "modem busy"
CMTS_FULL = "CMTS at its in-flight cap"
NEVER_SETTLED = "never settled (its worker was lost)"
WORKER_LOST = "WorkerLost"


def modem_lock_key(modem_pk: int) -> str:
    """The per-modem lease (``core.locks``) a tick holds while it measures."""
    return f"pnm:modem-lock:{modem_pk}"


def tick_over(operation_pk: int, lease: str, *, final: bool) -> None:
    """The poll chain of the tick measuring under ``lease`` ended by itself."""
    if final:
        final_tick_settled(operation_pk, lease)
        return
    ours = {"id": operation_pk, "inflight_lease": lease}
    update_where(Operation, ours, {"inflight_tick": None, "inflight_lease": ""})


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
        failed = Counter(
            (test, channel_id)
            for capture_pk, test, channel_id in Capture.objects.filter(
                operation_id=operation_pk, tick=tick, state=CaptureState.PENDING
            ).values_list("pk", "test", "channel_id")
            if Capture.objects.filter(pk=capture_pk, state=CaptureState.PENDING).update(
                state=CaptureState.FAILED, error=reason
            )
        )
        failed.update(_untriggered(operation, tick) or {})
        if failed:
            _tally(operation_pk, Outcome.FAILED, WORKER_LOST, failed)
    log.warning("operation %s: %s", operation.operation_id, reason)
    if tick >= operation.total_ticks:
        final_tick_settled(operation_pk)
    return True


def _tally(
    operation_pk: int,
    outcome: str,
    reason: str,
    slots: Mapping[Slot, int],
    also: Mapping[str, Any] | None = None,
) -> int:
    """Count ``outcome`` on planned slots (slot -> captures). Returns the captures counted.

    Counts only while the operation runs: the operation's counter UPDATE (filtered on the
    running state) is also the row lock that orders this with ``_finish``, which settles
    whatever is left; no row is read first. The channel rows move with it
    (``add_together``: one statement on PostgreSQL, where every trigger and every stored
    file comes through here). ``also``: more fields of the operation row to set in the same
    UPDATE. Runs in the caller's transaction.
    """
    count = sum(slots.values())
    if not count:
        return 0
    # A reason is a row of its own, counted in the same transaction.
    with transaction.atomic() if reason else nullcontext():
        if not add_together(*_tally_changes(operation_pk, outcome, slots, also)):
            return 0
        if reason:
            _count_reasons(outcome, reason, {operation_pk: count})
    return count


def _tally_changes(
    operation_pk: int,
    outcome: str,
    slots: Mapping[Slot, int],
    also: Mapping[str, Any] | None = None,
) -> list[Change]:
    """The UPDATEs of ``_tally``: the running operation's counter first, then its channel
    rows (grouped by test and count)."""
    running = {"id": operation_pk, "state": OperationState.RUNNING}
    counters = Change(
        Operation,
        running,
        {outcome: sum(slots.values())},
        {"updated": timezone.now(), **(also or {})},
    )
    rows: dict[tuple[str, int], list[int]] = {}
    for (test, channel_id), per_slot in slots.items():
        rows.setdefault((test, per_slot), []).append(channel_id)
    channels = [
        Change(
            ChannelTally,
            {"operation_id": operation_pk, "test": test, "channel_id": channel_ids},
            {outcome: per_slot},
        )
        for (test, per_slot), channel_ids in rows.items()
    ]
    return [counters, *channels]


def _tally_ticks(operation: Operation, ticks: range, outcome: str, reason: str) -> int:
    """Count whole ticks that never ran as ``outcome``: the slots their plans hold, or one
    unit per tick on the channel-less row while no slot is planned."""
    with transaction.atomic():
        if not _lock_running(operation.pk):
            return 0
        return _count_whole_ticks([(operation, ticks)], outcome, reason)


def _count_whole_ticks(gaps: list[tuple[Operation, range]], outcome: str, reason: str) -> int:
    """Count whole ticks that never ran as ``outcome`` on the slots their plans hold, for
    many locked running operations at once: one UPDATE per (test, count) and per total,
    not a transaction per operation. An operation with no slot planned yet counts one unit
    per tick on its channel-less row (``_count_unplanned``). Returns the captures counted."""
    if not gaps:
        return 0
    slots: dict[int, Counter[str]] = {}  # operation -> planned channels per file test
    planned = ChannelTally.objects.filter(
        operation_id__in=[operation.pk for operation, _ in gaps], channel_id__isnull=False
    )
    for operation_pk, test in planned.values_list("operation_id", "test"):
        slots.setdefault(operation_pk, Counter())[test] += 1
    per_slot: dict[tuple[str, int], list[int]] = {}
    per_operation: dict[int, list[int]] = {}
    totals: dict[int, int] = {}
    unplanned = {operation.pk: len(ticks) for operation, ticks in gaps if operation.pk not in slots}
    _count_unplanned(unplanned, outcome)
    for operation_pk, total in unplanned.items():
        per_operation.setdefault(total, []).append(operation_pk)
        totals[operation_pk] = total
    for operation, ticks in gaps:
        if operation.pk in unplanned:
            continue
        counts = plans.test_counts(operation, ticks)
        per_file = {spec.test_type: counts[test] for test in counts for spec in test.files}
        total = 0
        for test, channels in slots[operation.pk].items():
            if count := per_file.get(test, 0):
                per_slot.setdefault((test, count), []).append(operation.pk)
                total += count * channels
        if total:
            per_operation.setdefault(total, []).append(operation.pk)
            totals[operation.pk] = total
    for (test, count), pks in per_slot.items():
        ChannelTally.objects.filter(
            operation_id__in=pks, test=test, channel_id__isnull=False
        ).update(**{outcome: F(outcome) + count})
    for total, pks in per_operation.items():
        Operation.objects.filter(pk__in=pks).update(
            **{outcome: F(outcome) + total}, updated=timezone.now()
        )
    _count_reasons(outcome, reason, totals)
    return sum(totals.values())


def _count_unplanned(ticks: Mapping[int, int], outcome: str) -> None:
    """Add whole ticks (by locked operation key) to the channel-less rows of operations with
    no slot planned yet, made where missing: a few statements however many operations (a
    dispatcher pass above capacity counts hundreds that never had a tick run)."""
    if not ticks:
        return
    rows = ChannelTally.objects.filter(operation_id__in=list(ticks), channel_id__isnull=True)
    have = set(rows.values_list("operation_id", flat=True))
    insert_rows([ChannelTally(operation_id=pk) for pk in ticks if pk not in have])
    by_count: dict[int, list[int]] = {}
    for operation_pk, count in ticks.items():
        by_count.setdefault(count, []).append(operation_pk)
    for count, pks in by_count.items():
        rows.filter(operation_id__in=pks).update(
            planned=F("planned") + count, **{outcome: F(outcome) + count}
        )


def _count_reasons(outcome: str, reason: str, counts: Mapping[int, int]) -> None:
    """Add ``counts`` (operation -> captures) to the operations' ``reason`` rows of
    ``outcome``: one upsert for all of them."""
    if not counts:
        return
    table = OutcomeReason._meta.db_table
    rows = ", ".join(["(%s, %s, %s, %s)"] * len(counts))
    params: list[Any] = []
    for operation_pk, count in counts.items():
        params += [operation_pk, outcome, reason[:80], count]
    with connection.cursor() as cursor:
        cursor.execute(  # our model's table name; every value is a parameter
            f"INSERT INTO {table} (operation_id, outcome, reason, count) VALUES {rows} "  # noqa: S608
            f"ON CONFLICT (operation_id, outcome, reason) "
            f"DO UPDATE SET count = {table}.count + excluded.count",
            params,
        )


def _lock(operation_pk: int, **where: Any) -> bool:
    """Lock the operation's row (until the transaction ends) if it is there (and matches
    ``where``); only its key is read."""
    return bool(row_keys(Operation, {"id": operation_pk, **where}, lock=True))


def _lock_running(operation_pk: int) -> bool:
    return _lock(operation_pk, state=OperationState.RUNNING)


def _untriggered(operation: Operation, tick: int) -> Counter[Slot] | None:
    """The planned slots of ``tick`` that have no capture (None: none planned yet)."""
    planned = _planned_slots(operation)
    if not planned:
        return None
    due = {spec.test_type for test in plans.tick_tests(operation, tick) for spec in test.files}
    captured = set(
        Capture.objects.filter(operation_id=operation.pk, tick=tick).values_list(
            "test", "channel_id"
        )
    )
    return Counter(slot for slot in planned if slot[0] in due and slot not in captured)


def _count_tick_rest(operation: Operation, tick: int, outcome: str, reason: str) -> int:
    """Count the planned captures of ``tick`` that were not triggered as ``outcome``."""
    slots = _untriggered(operation, tick)
    if slots is None:
        return _tally_ticks(operation, range(tick, tick + 1), outcome, reason)
    return _tally(operation.pk, outcome, reason, slots) if slots else 0


def captures_triggered(captures: list[Capture], lease: str = "") -> None:
    """The modem accepted the trigger of ``captures`` (the files of one trigger). With
    ``lease``: their tick measures under that modem lease from now on; if the lease runs
    out before ``tick_over``, the sweeper settles the tick (``abandon_lost_ticks``)."""
    first = captures[0]
    slots = Counter((capture.test, capture.channel_id) for capture in captures)
    inflight = {"inflight_tick": first.tick, "inflight_lease": lease} if lease else None
    _tally(first.operation_id, Outcome.TRIGGERED, "", slots, also=inflight)


def captures_collected(captures: list[Capture]) -> set[int]:
    """The files of ``captures`` are stored: counted per operation (in key order, the
    order every batch locks them in), and their failures in a row are over. Returns the
    counted operations whose final tick has run: only those can complete now. The flag is
    read by the counter UPDATE itself, under its row lock, so a final tick settling at the
    same moment either is seen here or sees these captures counted. Runs in the caller's
    transaction."""
    per_operation: dict[int, Counter[Slot]] = {}
    for capture in captures:
        slots = per_operation.setdefault(capture.operation_id, Counter())
        slots[(capture.test, capture.channel_id)] += 1
    reset = {"consecutive_failures": 0}
    return {
        operation_pk
        for operation_pk, slots in sorted(per_operation.items())
        if any(
            add_together(
                *_tally_changes(operation_pk, Outcome.COLLECTED, slots, also=reset),
                returning="final_tick_done",
            )
        )
    }


def tick_skipped(operation: Operation, tick: int, reason: str = MODEM_BUSY) -> None:
    """The tick did not run (the modem was busy): its untriggered slots are skipped."""
    _tick_not_run(operation, tick, Outcome.SKIPPED, reason)


def tick_missed(operation: Operation, tick: int, reason: str) -> None:
    """The tick could not be admitted (its CMTS was at its cap): its untriggered slots
    are missed."""
    _tick_not_run(operation, tick, Outcome.MISSED, reason)


def _tick_not_run(operation: Operation, tick: int, outcome: str, reason: str) -> None:
    if not _first_report(operation, tick):
        log.info("operation %s tick %s: already counted", operation.operation_id, tick)
        return
    log.info("operation %s tick %s %s: %s", operation.operation_id, tick, outcome, reason)
    _count_tick_rest(operation, tick, outcome, reason)


def _first_report(operation: Operation, tick: int) -> bool:
    """True the first time ``tick`` is reported as not run. A trigger is acknowledged
    after its task (acks_late), so a worker that dies after counting a skipped or lapsed
    tick, before the acknowledgement, has the trigger delivered again; its tick must not
    be counted twice. Marked before the count: a worker dying between the two leaves the
    tick unsettled, which the sweeper counts missed ("never settled"), an undercount it
    repairs instead of a count that lies. One bit per tick, kept while the operation can
    still count (its time left, plus an hour)."""
    ttl = time_remaining(operation) + 3600
    key = f"pnm:ticks-reported:{operation.pk}"
    redis = locks.cache_redis(key)
    if redis is None:
        return bool(cache.add(f"{key}:{tick}", 1, timeout=ttl))
    client, full_key = redis
    pipeline = client.pipeline()
    pipeline.setbit(full_key, tick, 1)
    pipeline.expire(full_key, ttl)
    before, _ = pipeline.execute()
    return not before


NAME_ATTEMPTS = 5


def create_captures(
    operation: Operation,
    tick: int,
    test: pnm.PnmTest,
    channel_id: int,
    if_index: int,
    file_name: Callable[[str, int], str],
    measure_s: float,
) -> list[Capture] | None:
    """The rows of the files one trigger of ``test`` asks for (one per ``test.files``), or
    None if this (tick, test, channel) was already triggered.

    ``file_name(file_test_type, offset)``: PyPNM-style names carry the epoch second, so a
    late tick landing in the same second as the next one takes the next free second
    instead of colliding. ``measure_s``: how long the measurement may take.
    """
    now = timezone.now()
    deadline = now + timedelta(seconds=measure_s + settings.PNM_UPLOAD_DEADLINE_S)
    first_test = test.files[0].test_type
    running = {"id": operation.pk, "state": OperationState.RUNNING}
    for offset in range(NAME_ATTEMPTS):
        rows = [
            Capture(
                operation=operation,
                tick=tick,
                test=spec.test_type,
                channel_id=channel_id,
                if_index=if_index,
                file_name=file_name(spec.test_type, offset),
                triggered_at=now,
                deadline=deadline,
            )
            for spec in test.files
        ]
        try:
            # Under the operation's row lock: ``_finish`` either sees these captures
            # (and cancels them) or comes first (and none is made).
            return insert_rows_locking(rows, Operation, running) or None
        except IntegrityError:
            if Capture.objects.filter(
                operation=operation, tick=tick, test=first_test, channel_id=channel_id
            ):
                return None
    name = file_name(first_test, 0)
    raise IntegrityError(f"no free file name for {name} after {NAME_ATTEMPTS} tries")


def tick_failed(
    operation_pk: int,
    reason: str,
    kind: str,
    *,
    tick: int | None = None,
    slots: Mapping[Slot, int] | None = None,
) -> Operation | None:
    """Count a failure of ``kind`` (an error class) on ``slots``, or on the slots ``tick``
    had not triggered yet; fail the operation after PNM_MAX_CONSECUTIVE_FAILURES failures
    in a row. Only a counted failure sets ``last_error``."""
    log.warning("operation pk=%s: %s", operation_pk, reason)
    with transaction.atomic():
        operation = one_or_none(Operation.objects.select_for_update().filter(pk=operation_pk))
        if operation is None or operation.is_terminal:
            return operation
        if slots is not None:
            _tally(operation_pk, Outcome.FAILED, kind, slots)
        elif tick is not None:
            _count_tick_rest(operation, tick, Outcome.FAILED, kind)
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
    capture = one_or_none(
        Capture.objects.filter(pk=capture_pk).only("operation_id", "test", "channel_id")
    )
    if capture is None:
        return False
    changed = Capture.objects.filter(pk=capture_pk, state__in=OPEN_CAPTURE_STATES).update(
        state=CaptureState.FAILED, error=reason[:2000]
    )
    if changed:
        slot = {(capture.test, capture.channel_id): 1}
        tick_failed(capture.operation_id, reason, kind, slots=slot)
    return bool(changed)


def mark_uploaded(files: Mapping[int, str]) -> set[int]:
    """The receiver holds these complete files (capture -> spool path): the captures that
    still want them, marked uploaded in one UPDATE (the receiver forwards what arrived
    together). A capture no longer pending is left out.

    Taken again for the same file: a receiver whose first try marked the capture but could
    not queue its staging (the broker was away) tries again, and must not take the file
    for one nobody wants."""
    if not files:
        return set()
    meta = Capture._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    columns = {field.attname: quote(str(field.column)) for field in meta.concrete_fields}
    pk, state, spool_path = columns["id"], columns["state"], columns["spool_path"]
    typed = connection.vendor == "postgresql"  # VALUES columns need their types there
    row = "(CAST(%s AS bigint), CAST(%s AS varchar))" if typed else "(%s, %s)"
    params: list[Any] = [CaptureState.UPLOADED]
    for capture_pk, path in files.items():
        params += [capture_pk, path]
    params += [CaptureState.PENDING, CaptureState.UPLOADED]
    sql = (  # names from the model's metadata, quoted; every value is a parameter
        f"UPDATE {table} SET {state} = %s, {spool_path} = v.column2 "  # noqa: S608
        f"FROM (VALUES {', '.join([row] * len(files))}) AS v "
        f"WHERE {table}.{pk} = v.column1 AND ({table}.{state} = %s "
        f"OR ({table}.{state} = %s AND {table}.{spool_path} = v.column2)) "
        f"RETURNING {table}.{pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def mark_stored(capture_pks: list[int]) -> set[int]:
    """Of ``capture_pks``, the captures still waiting for staging, now marked stored (and
    their rows locked until the caller's transaction ends)."""
    waiting = {"id": capture_pks, "state": CaptureState.UPLOADED}
    return set(update_returning(Capture, waiting, {"state": CaptureState.STORED}, "id"))


def final_tick_settled(operation_pk: int, lease: str = "") -> bool:
    """The final tick's trigger is over (and its tick measuring under ``lease``, if it had
    one): flagged in one UPDATE, under the row lock. The operation is completed here only
    when every planned capture had settled by then; otherwise the capture still to settle
    (staged or failed), whose counter UPDATE takes the same lock and then reads the flag,
    completes it."""
    if not _flag_final_tick(operation_pk, lease):
        return False
    return maybe_complete(operation_pk) > 0


def _flag_final_tick(operation_pk: int, lease: str) -> bool:
    """One UPDATE: the final tick done, the in-flight record cleared if ``lease`` still
    owns it; True when every planned capture had settled (False: no such operation)."""
    meta = Operation._meta
    quote = connection.ops.quote_name

    def column(name: str) -> str:
        return quote(str(cast(Field, meta.get_field(name)).column))

    settled = " + ".join(column(outcome) for outcome in SETTLED_OUTCOMES)
    ours = f"(%s <> '' AND {column('inflight_lease')} = %s)"
    sql = (  # names from the model's metadata, quoted; every value is a parameter
        f"UPDATE {quote(meta.db_table)} SET {column('final_tick_done')} = %s, "  # noqa: S608
        f"{column('inflight_tick')} = CASE WHEN {ours} THEN NULL "
        f"ELSE {column('inflight_tick')} END, "
        f"{column('inflight_lease')} = CASE WHEN {ours} THEN '' "
        f"ELSE {column('inflight_lease')} END "
        f"WHERE {column('id')} = %s RETURNING {settled} >= {column('expected')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [True, lease, lease, lease, lease, operation_pk])
        row = cursor.fetchone()
    return bool(row and row[0])


def maybe_complete(*operation_pks: int, give_up: bool = False) -> int:
    """Complete each running operation of ``operation_pks`` whose final tick ran and whose
    planned captures have all settled (stored, skipped, missed or failed), so no capture can
    land after completion; how many it completed. One transaction for all of them (staging
    ends the operations of the files it stored together).

    ``give_up`` (the sweeper, long after the last tick): what never settled although no
    capture is open any more was lost with its worker; count it missed.
    """
    if not operation_pks:
        return 0
    with transaction.atomic():
        running = {"id": sorted(operation_pks), "state": OperationState.RUNNING}
        operations = [op for op in load_all(Operation, running, lock=True) if op.final_tick_done]
        if not operations:
            return 0
        still_open = set(
            Capture.objects.filter(
                operation_id__in=[operation.pk for operation in operations],
                state__in=OPEN_CAPTURE_STATES,
            ).values_list("operation_id", flat=True)
        )
        ending: list[tuple[Operation, str, str]] = []
        for operation in operations:
            if operation.pk in still_open:
                continue
            if operation.settled < operation.expected:
                if not give_up:
                    continue  # a tick is still on its way
                _settle_rest(operation, Outcome.MISSED, NEVER_SETTLED)
                operation.refresh_from_db()
            ending.append((operation, *_outcome(operation)))
        _finish_all(ending)
    return len(ending)


def _outcome(operation: Operation) -> tuple[str, str]:
    """The terminal state (and error) of an operation that ran to its end."""
    if operation.collected == 0 and operation.failed:
        # Not one file in the whole run: that is a failure, whatever the count.
        return OperationState.FAILED, operation.last_error
    if operation.collected < operation.expected:
        return OperationState.COMPLETED_PARTIAL, ""
    return OperationState.COMPLETED, ""


def _settle_rest(operation: Operation, outcome: str, reason: str) -> None:
    """Count every planned capture without an outcome yet as ``outcome``: the ones the
    operation will never run. Runs with the operation row locked."""
    rows = list(operation.channels.all())
    if not any(row.channel_id is not None for row in rows):
        early = sum(row.planned for row in rows)
        if operation.planned_ticks > early:
            never_run = range(early + 1, operation.planned_ticks + 1)
            _tally_ticks(operation, never_run, outcome, reason)
        return
    # (a channel-less row holds no ticks once channels are known)
    rest = {
        (row.test, row.channel_id): row.planned - row.settled
        for row in rows
        if row.channel_id is not None and row.planned > row.settled
    }
    if rest:
        _tally(operation.pk, outcome, reason, rest)


def stop_operation(operation: Operation) -> bool:
    """Stop a running operation now: no more ticks, no final capture (as PyPNM)."""
    with transaction.atomic():
        locked = Operation.objects.select_for_update().get(pk=operation.pk)
        if locked.is_terminal:
            return False
        _finish(locked, OperationState.STOPPED, "")
    return True


def _finish(operation: Operation, state: str, error: str) -> None:
    """``_finish_all`` for one operation."""
    _finish_all([(operation, state, error)])


def _finish_all(ending: list[tuple[Operation, str, str]]) -> None:
    """Persist each (operation, state, error)'s final state and counters, no next tick,
    open captures cancelled; one UPDATE for all of them, and one ``operations_finished``.

    Runs inside the caller's transaction with the operation rows locked, each read (or
    refreshed) under that lock.
    """
    if not ending:
        return
    now = timezone.now()
    cut_short = []  # stopped or failed: their open captures cancelled, the rest settled
    for operation, state, error in ending:
        ran_to_end = state in (OperationState.COMPLETED, OperationState.COMPLETED_PARTIAL)
        if not ran_to_end:
            cut_short.append(operation)
            operation.captures.filter(state__in=OPEN_CAPTURE_STATES).update(
                state=CaptureState.CANCELLED, error=f"operation {state}"
            )
            _settle_rest(operation, Outcome.CANCELLED, f"operation {state}")
        operation.time_remaining = 0 if ran_to_end else time_remaining(operation)
        operation.state = state
        operation.finished_at = now
        if error:
            operation.last_error = error
        operation.next_tick_at = None
        operation.updated = now
    operations = [operation for operation, _state, _error in ending]
    update_rows(
        operations,
        ["state", "finished_at", "time_remaining", "last_error", "next_tick_at", "updated"],
    )
    for operation in cut_short:
        operation.refresh_from_db()  # the counts ``_settle_rest`` added (ours are current)
    signals.operations_finished.send(sender=Operation, operations=operations)
    for operation in operations:
        log.info(
            "operation %s %s: %d of %d planned captures collected; skipped %d, missed %d, "
            "failed %d, cancelled %d",
            operation.operation_id,
            operation.state,
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
    """The sweeper's work: settle ticks whose worker died, expire overdue captures, give a
    running operation that lost its next tick time one again, find operations whose final
    tick was lost and uploads whose staging was lost.
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
        elif operation.measure_mode != MeasureMode.SINGLE and operation.next_tick_at is None:
            due = operation.tick_due_at(operation.last_tick + 1)
            Operation.objects.filter(pk=operation.pk, next_tick_at=None).update(next_tick_at=due)
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
