"""The life of a campaign run, in plain functions that own their database transactions.

A run walks its target in modem-id order. The dispatcher (one pass a second, under a
lease) keeps a bounded window of items queued ahead, and starts an ordinary operation for
each queued item while the run's caps (overall and per CMTS) have room. An operation's end
(``captures.signals.operations_finished``) settles its item in the same transaction: done,
retried, failed or skipped with its reason. Progress is counted from the items.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from campaigns import schedules
from campaigns.models import (
    OPEN_ITEM_STATES,
    Campaign,
    CampaignItem,
    CampaignRun,
    ItemState,
    RunState,
    ScheduleKind,
)
from captures import services as captures
from captures.analyses import fleet
from captures.analysis import load_transaction
from captures.models import Operation, OperationState, Outcome, Transaction
from captures.pnm.errors import PnmFormatError
from core import locks
from core.rows import (
    load_all,
    load_all_with,
    load_one,
    row_keys,
    update_rows,
    update_where,
)
from devices.links.snmp import is_ipv6
from devices.models import CableModem

log = logging.getLogger(__name__)

DISPATCH_LEASE = "campaigns:dispatch"
DISPATCH_LEASE_TTL_S = 30.0
MIN_WINDOW = 100  # items queued ahead of dispatch, at least (2 x max_in_flight otherwise)
MODEM_REMOVED = "modem removed from the registry"
IPV6_MANAGED = "IPv6-managed (the TFTP receiver is IPv4-only)"
EMPTY_TARGET = "the target holds no modem"
# Failure classes another attempt cannot mend: the modem lacks what the test needs. The
# modem is skipped as unsupported, not retried, not counted as failed.
UNSUPPORTED = {"NoChannels": "unsupported: no channel of the test's scope"}

# Target filters: request key -> how it selects modems (values: one string or a list).
TARGET_FILTERS = ("cmts", "tag", "vendor", "model", "mac_prefix")


class TargetError(ValueError):
    """A target that selects nothing or cannot be read."""


def normalised_mac_prefix(prefix: str) -> str:
    """``AA-BB-c`` -> ``aa:bb:c``: the stored form (lower case, colon-separated)."""
    digits = "".join(ch for ch in prefix.lower() if ch in "0123456789abcdef")
    if not digits or len(digits) != len(prefix.replace(":", "").replace("-", "")):
        raise TargetError(f"mac_prefix {prefix!r} is not hex digits with ':' or '-'")
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def _values(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def target_modems(target: dict) -> QuerySet[CableModem]:
    """The modems a target selects, now (unordered)."""
    if target.get("all"):
        return CableModem.objects.all()
    if "modems" in target:
        return CableModem.objects.filter(pk__in=target["modems"])
    condition = Q()
    for key, value in target["filter"].items():
        if key not in TARGET_FILTERS:
            raise TargetError(f"unknown filter {key!r}; known: {', '.join(TARGET_FILTERS)}")
        either = Q()
        for one in _values(value):
            if key == "mac_prefix":
                either |= Q(mac_address__startswith=normalised_mac_prefix(one))
            elif key in ("vendor", "model"):
                either |= Q(**{f"{key}__iexact": one})
            else:
                either |= Q(**{key: one})
        condition &= either
    return CableModem.objects.filter(condition)


# --- starting and stopping ---------------------------------------------------------------------
def create_campaign(**fields: object) -> Campaign:
    """A campaign with its beat entry (at / recurring); schedule ``now`` starts its first
    run in the same transaction."""
    with transaction.atomic():
        campaign = Campaign.objects.create(**fields)
        schedules.install(campaign)
        if campaign.schedule == ScheduleKind.NOW:
            start_run(campaign)
    return campaign


def start_scheduled_run(campaign: Campaign) -> CampaignRun | None:
    """Beat's run of a scheduled campaign; none while its previous run is still going (a
    nightly run that takes longer than a night is not doubled)."""
    if campaign.runs.filter(state=RunState.RUNNING).exists():
        log.warning("campaign %s: previous run still running, no new run", campaign.name)
        return None
    return start_run(campaign)


def start_run(campaign: Campaign) -> CampaignRun:
    """A new run over the target as it stands now (its plan, fixed here). A target that
    selects nothing gives a failed run saying so."""
    with transaction.atomic():
        figures = target_modems(campaign.target).aggregate(count=Count("pk"), last=Max("pk"))
        run = CampaignRun.objects.create(
            campaign=campaign, planned=figures["count"], last_modem_id=figures["last"] or 0
        )
        if not figures["count"]:
            _finish_run(run, RunState.FAILED, EMPTY_TARGET)
        else:
            transaction.on_commit(_send_dispatch)
    log.info("campaign %s: run %s of %d modems", campaign.name, run.run_id, run.planned)
    return run


def _send_dispatch() -> None:
    from campaigns import tasks  # tasks import services

    tasks.dispatch_campaigns.delay()


def stop_run(run: CampaignRun) -> bool:
    """Cancel a running run: queued items are cancelled, running operations stopped (their
    items settle as cancelled). False when it had already ended."""
    with transaction.atomic():
        locked = CampaignRun.objects.select_for_update().get(pk=run.pk)
        if locked.state != RunState.RUNNING:
            return False
        _finish_run(locked, RunState.CANCELLED, "stopped by an operator")
        locked.items.filter(state=ItemState.QUEUED).update(
            state=ItemState.CANCELLED, finished_at=timezone.now()
        )
    running = Operation.objects.filter(
        campaign_item__run=run, state=OperationState.RUNNING
    ).order_by()
    for operation in running.iterator():
        captures.stop_operation(operation)
    return True


def _finish_run(run: CampaignRun, state: str, error: str = "") -> None:
    run.state = state
    run.finished_at = timezone.now()
    run.error = error
    run.save(update_fields=["state", "finished_at", "error"])


# --- the dispatcher ----------------------------------------------------------------------------
def dispatch() -> dict[str, str]:
    """One pass over every running run (single-flight: a pass already under way makes
    this one a no-op). Returns each run's progress line (Flower shows it as the result)."""
    lines: dict[str, str] = {}
    with locks.held(DISPATCH_LEASE, DISPATCH_LEASE_TTL_S) as lease:
        if lease is None:
            return lines
        for run in CampaignRun.objects.filter(state=RunState.RUNNING).select_related("campaign"):
            dispatch_run(run)
            lines[run.run_id] = progress(run).line()
    return lines


def dispatch_run(run: CampaignRun) -> int:
    """Queue the next window of the target, start what the caps allow, finish the run when
    nothing is left. Returns the operations started."""
    campaign = run.campaign
    _expand(run, window=max(MIN_WINDOW, 2 * campaign.max_in_flight))
    in_flight = Counter(
        dict(
            run.items.filter(state=ItemState.RUNNING)
            .values_list("cmts")
            .annotate(count=Count("pk"))
            .order_by()
        )
    )
    room = campaign.max_in_flight - sum(in_flight.values())
    chosen: list[int] = []
    if room > 0:
        full = [cmts for cmts, count in in_flight.items() if count >= campaign.max_per_cmts]
        queued = run.items.filter(state=ItemState.QUEUED).exclude(cmts__in=full).order_by("pk")
        for item_pk, cmts in queued.values_list("pk", "cmts")[: room * 4]:
            if len(chosen) >= room:
                break
            if in_flight[cmts] < campaign.max_per_cmts:
                in_flight[cmts] += 1
                chosen.append(item_pk)
    started = _start_items(chosen, run, campaign) if chosen else 0
    if run.expanded and not run.items.filter(state__in=OPEN_ITEM_STATES).exists():
        _settle_run(run.pk)
    return started


def _expand(run: CampaignRun, window: int) -> None:
    """Create queued items for the next modems of the target, up to ``window`` queued."""
    if run.expanded:
        return
    need = window - run.items.filter(state=ItemState.QUEUED).count()
    if need <= 0:
        return
    modems = list(
        target_modems(run.campaign.target)
        .filter(pk__gt=run.cursor, pk__lte=run.last_modem_id)
        .order_by("pk")
        .values_list("pk", "mac_address", "cmts")[:need]
    )
    CampaignItem.objects.bulk_create(
        [
            CampaignItem(run=run, modem_id=pk, mac_address=mac, cmts=cmts)
            for pk, mac, cmts in modems
        ],
        ignore_conflicts=True,  # a pass that died after creating them: same rows
    )
    run.cursor = modems[-1][0] if modems else run.cursor
    run.expanded = len(modems) < need
    run.save(update_fields=["cursor", "expanded"])


def _start_items(item_pks: list[int], run: CampaignRun, campaign: Campaign) -> int:
    """Start the operations of a pass's chosen items together (or skip the modems that
    cannot run one), in one transaction: the items locked while still queued, read with
    their modems in one join, their operations made in one go
    (``captures.start_operations``) and the items updated in one statement. Nothing starts
    once the run was stopped. Returns the operations started."""
    now = timezone.now()
    with transaction.atomic():
        locked = row_keys(CampaignItem, {"id": item_pks, "state": ItemState.QUEUED}, lock=True)
        current = load_one(CampaignRun, {"id": run.pk})
        if not locked or current is None or current.state != RunState.RUNNING:
            return 0
        with_modems = [
            (item, item.modem)
            for item in load_all_with(CampaignItem, {"id": locked}, "modem")
            if item.modem is not None  # (the join says so; the row type cannot)
        ]
        ipv6 = [item.pk for item, modem in with_modems if is_ipv6(modem.ip_address)]
        removed = sorted(set(locked) - {item.pk for item, _ in with_modems})
        for pks, reason in ((removed, MODEM_REMOVED), (ipv6, IPV6_MANAGED)):
            update_where(
                CampaignItem,
                {"id": pks},
                {"state": ItemState.SKIPPED, "error_class": reason, "finished_at": now},
            )
        ready = [(item, modem) for item, modem in with_modems if item.pk not in ipv6]
        operations = captures.start_operations(
            [
                (modem, f"campaign {campaign.name} run {run.run_id}: {item.mac_address}")
                for item, modem in ready
            ],
            summarise_files=True,
            **campaign.plan,
        )
        starting = [item for item, _ in ready]
        for item, operation in zip(starting, operations, strict=True):
            item.operation = operation
            item.state = ItemState.RUNNING
            item.attempts += 1
            item.started_at = item.started_at or now
        update_rows(starting, ["operation_id", "state", "attempts", "started_at"])
    return len(starting)


def _end_item(
    item: CampaignItem, state: str, error_class: str, now: datetime, error: str = ""
) -> None:
    """Give ``item`` its final state (saved by ``_save_ended``)."""
    item.state = state
    item.error_class = error_class
    item.error = error
    item.finished_at = now


def _save_ended(items: list[CampaignItem]) -> None:
    """One UPDATE for the ended items, and one more for those with a summary."""
    ended = ["state", "error_class", "error", "finished_at"]
    summarised = [item for item in items if item.summarised]
    update_rows([item for item in items if not item.summarised], ended)
    update_rows(summarised, [*ended, "metric", "value", "worse", "figures", "summarised"])


def _settle_run(run_pk: int) -> None:
    """Give a run whose items are all settled its final state, from the items."""
    with transaction.atomic():
        run = CampaignRun.objects.select_for_update().get(pk=run_pk)
        if run.state != RunState.RUNNING:
            return
        counts = progress(run)
        if counts.open:
            return
        if counts.done == 0:
            _finish_run(run, RunState.FAILED, counts.worst_reason())
        elif counts.done < run.planned:
            _finish_run(run, RunState.COMPLETED_PARTIAL)
        else:
            _finish_run(run, RunState.COMPLETED)
    log.info("campaign run %s %s: %s", run.run_id, run.state, counts.line())


# --- an operation ended ------------------------------------------------------------------------
def operations_finished(sender: object, operations: list[Operation], **_: object) -> None:
    """Settle the campaign items of ``operations`` (those that have one), in their
    transaction: done with its summary when its operation collected, else cancelled,
    skipped, retried or failed. The items, their runs and the collected ones' parts are
    read once and the ended items written once for all of ``operations`` (every
    operation's end passes here; staging ends several together)."""
    by_pk: dict[int | None, Operation] = {operation.pk: operation for operation in operations}
    items = [
        (item, by_pk[item.operation_id])
        for item in load_all(CampaignItem, {"operation_id": list(by_pk)}, lock=True)
    ]
    if not items:
        return
    run_pks = sorted({item.run_id for item, _operation in items})
    runs = {run.pk: run for run in load_all_with(CampaignRun, {"id": run_pks}, "campaign")}
    for item, _operation in items:
        item.run = runs[item.run_id]  # read once for the batch, with its campaign
    now = timezone.now()
    _summarise([(item, operation) for item, operation in items if operation.collected])
    ended = []
    for item, operation in items:
        if operation.collected:
            _end_item(item, ItemState.DONE, "", now)
        elif item.run.state == RunState.CANCELLED:
            _end_item(item, ItemState.CANCELLED, "", now)
        else:
            outcome, reason = _main_reason(operation)
            if reason in UNSUPPORTED:
                _end_item(item, ItemState.SKIPPED, UNSUPPORTED[reason], now)
            elif item.attempts <= item.run.campaign.retries:
                item.state = ItemState.QUEUED  # another attempt, when the caps have room
                item.error_class = reason
                item.save(update_fields=["state", "error_class"])
                continue
            else:
                state = ItemState.FAILED if outcome == Outcome.FAILED else ItemState.SKIPPED
                _end_item(item, state, reason, now, operation.last_error)
        ended.append(item)
    _save_ended(ended)


def _main_reason(operation: Operation) -> tuple[str, str]:
    """The outcome and reason that account for most of an operation's planned captures:
    a failure class first (it names what went wrong), then skips and misses, then the
    captures cancelled because the operation ended."""
    rows = list(
        operation.reasons.exclude(outcome=Outcome.COLLECTED).values_list(
            "outcome", "reason", "count"
        )
    )
    for wanted in ({Outcome.FAILED}, {Outcome.SKIPPED, Outcome.MISSED}, {Outcome.CANCELLED}):
        matching = [row for row in rows if row[0] in wanted]
        if matching:
            outcome, reason, _count = max(matching, key=lambda row: row[2])
            return outcome, reason
    return Outcome.FAILED, f"operation {operation.state}"


# --- progress ----------------------------------------------------------------------------------
@dataclass
class Progress:
    """A run's counts, from its items (``planned`` is the run's own, fixed at its start)."""

    planned: int
    started_at: datetime
    finished_at: datetime | None
    by_state: Counter[str] = field(default_factory=Counter)
    failed_by_class: Counter[str] = field(default_factory=Counter)
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    removed: int = 0  # target modems deleted before the run reached them
    summaries_missing: int = 0  # done, but a file could not be read for the summary

    @property
    def done(self) -> int:
        return self.by_state[ItemState.DONE]

    @property
    def failed(self) -> int:
        return self.by_state[ItemState.FAILED]

    @property
    def skipped(self) -> int:
        return self.by_state[ItemState.SKIPPED] + self.removed

    @property
    def cancelled(self) -> int:
        return self.by_state[ItemState.CANCELLED]

    @property
    def open(self) -> int:
        return self.by_state[ItemState.QUEUED] + self.by_state[ItemState.RUNNING]

    @property
    def settled(self) -> int:
        return self.done + self.failed + self.skipped + self.cancelled

    def elapsed_s(self, now: datetime | None = None) -> float:
        end = self.finished_at or now or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds())

    def rate(self, now: datetime | None = None) -> float:
        """Modems settled per second since the start."""
        elapsed = self.elapsed_s(now)
        return self.settled / elapsed if elapsed > 0 else 0.0

    def eta_s(self, now: datetime | None = None) -> float | None:
        """Seconds to go at the rate so far; None before the first modem settles."""
        if self.finished_at is not None:
            return 0.0
        rate = self.rate(now)
        return (self.planned - self.settled) / rate if rate > 0 else None

    def worst_reason(self) -> str:
        reasons = self.failed_by_class + self.skipped_by_reason
        if not reasons:
            return ""
        return "; ".join(f"{reason}: {count}" for reason, count in reasons.most_common())

    def line(self) -> str:
        eta = self.eta_s()
        return (
            f"{self.settled}/{self.planned} settled: {self.done} done, {self.failed} failed, "
            f"{self.skipped} skipped, {self.by_state[ItemState.RUNNING]} running, "
            f"{self.rate():.1f}/s" + (f", ETA {eta:.0f} s" if eta else "")
        )


def progress(run: CampaignRun) -> Progress:
    """Counts by state and by reason, two grouped queries however large the run."""
    return progress_of_runs([run])[run.pk]


def progress_of_runs(runs: Iterable[CampaignRun]) -> dict[int, Progress]:
    """``progress`` of many runs (a page of campaigns, a campaign's runs) in the same two
    grouped queries, by run pk."""
    runs = list(runs)
    table = {run.pk: Progress(run.planned, run.started_at, run.finished_at) for run in runs}
    items = CampaignItem.objects.filter(run_id__in=list(table)).order_by()
    for run_pk, state, summarised, count in items.values_list(
        "run_id", "state", "summarised"
    ).annotate(n=Count("pk")):
        counts = table[run_pk]
        counts.by_state[state] += count
        if state == ItemState.DONE and not summarised:
            counts.summaries_missing += count
    for run_pk, state, reason, count in (
        items.filter(state__in=(ItemState.FAILED, ItemState.SKIPPED))
        .values_list("run_id", "state", "error_class")
        .annotate(n=Count("pk"))
    ):
        counts = table[run_pk]
        target = counts.failed_by_class if state == ItemState.FAILED else counts.skipped_by_reason
        target[reason] = count
    for run in runs:
        counts = table[run.pk]
        if run.expanded:
            counts.removed = max(0, run.planned - sum(counts.by_state.values()))
            if counts.removed:
                counts.skipped_by_reason[MODEM_REMOVED] += counts.removed
    return table


def latest_runs(campaigns: Iterable[Campaign]) -> dict[int, CampaignRun]:
    """The latest run of each of ``campaigns`` that has one, by campaign pk, in one query."""
    latest = CampaignRun.objects.filter(campaign=OuterRef("pk")).order_by("-pk").values("pk")[:1]
    keys = Campaign.objects.filter(pk__in=[campaign.pk for campaign in campaigns]).annotate(
        latest=Subquery(latest)
    )
    runs = CampaignRun.objects.filter(pk__in=keys.values("latest")).select_related("campaign")
    return {run.campaign_id: run for run in runs}


def progress_by_cmts(run: CampaignRun) -> dict[str, dict[str, int]]:
    """Items by state for each CMTS the run has reached ("" for modems without one)."""
    table: dict[str, dict[str, int]] = {}
    rows = run.items.order_by().values_list("cmts", "state").annotate(n=Count("pk"))
    for cmts, state, count in rows:
        table.setdefault(cmts, dict.fromkeys(ItemState.values, 0))[state] = count
    return table


# --- results -----------------------------------------------------------------------------------
def _summarise(items: list[tuple[CampaignItem, Operation]]) -> None:
    """Each item's summary, combined from the parts staging kept with its files'
    transactions (``fleet.file_part``): computed as captures arrive, no file read again;
    one read of the transactions for all of ``items`` (their runs loaded). A file staged
    without its part (by an older version) is read once here; when that read fails the item
    is left unsummarised (``summaries_missing``) rather than holding up the operation's end."""
    if not items:
        return
    groups = {operation.capture_group_id: item for item, operation in items}
    records: dict[int, list[Transaction]] = {group: [] for group in groups}
    for record in load_all(Transaction, {"capture_group_id": list(groups)}):
        records[record.capture_group_id].append(record)
    for group, item in groups.items():
        try:
            parts = _parts(records[group])
        except (PnmFormatError, OSError) as exc:  # missing, damaged, storage down
            log.warning(
                "campaign item %s: no summary, a stored file is unreadable: %s", item.pk, exc
            )
            continue
        summary = fleet.combine(parts, mer_threshold_db=item.run.campaign.mer_threshold_db)
        if summary is not None:
            item.metric, item.value, item.worse = summary.metric, summary.value, summary.worse
            item.figures = summary.figures
        item.summarised = True


def _parts(records: list[Transaction]) -> list[fleet.Part]:
    """The summary parts of one operation's stored files."""
    parts: list[fleet.Part] = []
    for record in records:
        if record.summary_part is not None:
            parts.append(record.summary_part)
        elif record.pnm_test_type in fleet.PART_TESTS:
            part = fleet.file_part(load_transaction(record))
            parts.extend([part] if part is not None else [])
    return parts


def summarised_items(run: CampaignRun) -> QuerySet[CampaignItem]:
    return run.items.filter(state=ItemState.DONE, value__isnull=False)


def worst(run: CampaignRun, count: int) -> list[CampaignItem]:
    """The ``count`` modems with the worst summary value, worst first."""
    items = summarised_items(run)
    direction = items.order_by().values_list("worse", flat=True).first()
    if direction is None:
        return []
    order = "value" if direction == "lower" else "-value"
    return list(items.select_related("operation").order_by(order, "pk")[:count])


def values_by_cmts(run: CampaignRun) -> tuple[str, dict[str, list[float]]]:
    """The run's metric and its values grouped by CMTS ("(none)" for modems without one)."""
    groups: dict[str, list[float]] = {}
    metric = ""
    for cmts, name, value in (
        summarised_items(run).order_by("cmts", "pk").values_list("cmts", "metric", "value")
    ):
        if value is not None:  # (the filter says so; the row type cannot)
            metric = name
            groups.setdefault(cmts or "(none)", []).append(value)
    return metric, groups
