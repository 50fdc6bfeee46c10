"""The dispatcher and the settling of items, against PostgreSQL (no devices: operations
are ended through the captures services, as the pipeline ends them)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from campaigns import services
from campaigns.models import Campaign, CampaignItem, CampaignRun, ItemState, RunState
from captures import services as captures
from captures.models import Operation, OperationState, Outcome, OutcomeReason
from tests.factories import make_modem

pytestmark = pytest.mark.django_db

RXMER = "DS_OFDM_RXMER_PER_SUBCAR"
PLAN = {
    "name": "single_capture",
    "measure_mode": "single",
    "test": RXMER,
    "parameters": {RXMER: {}},
    "duration_s": 1,
    "sample_interval_s": 1,
    "channel_ids": None,
}


def campaign(**fields) -> Campaign:
    options = {
        "name": "c",
        "target": {"all": True},
        "plan": PLAN,
        "max_in_flight": 4,
        "max_per_cmts": 2,
        "retries": 1,
        "mer_threshold_db": 30.0,
        "schedule": "manual",
        **fields,
    }
    return Campaign.objects.create(**options)


def bulk_modems(count: int, groups: int) -> None:
    from devices.models import CableModem

    CableModem.objects.bulk_create(
        CableModem(
            mac_address=f"02:10:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}:00",
            ip_address="127.0.0.1",
            snmp_port=16100,
            community="c",
            cmts=f"cmts-{i % groups:02d}",
        )
        for i in range(count)
    )


def end(
    operation: Operation | None, *, collected: int, outcome: str = "", reason: str = ""
) -> None:
    """Count the operation's one capture as the pipeline would (collected, or ``outcome``
    for ``reason``), then let it finish as the pipeline does."""
    assert operation is not None
    with transaction.atomic():
        counted = {"collected": 1} if collected else {outcome: 1}
        Operation.objects.filter(pk=operation.pk).update(final_tick_done=True, **counted)
        if not collected:
            OutcomeReason.objects.create(
                operation=operation, outcome=outcome, reason=reason, count=1
            )
    assert captures.maybe_complete(operation.pk)


def test_a_large_target_is_expanded_a_window_at_a_time_within_the_caps():
    bulk_modems(1000, groups=3)
    run = services.start_run(campaign(max_in_flight=5, max_per_cmts=1))

    started = services.dispatch_run(run)

    # caps: one per CMTS (3 CMTSes) although 5 are allowed overall
    assert started == 3
    assert CampaignItem.objects.count() == services.MIN_WINDOW  # not 1000 rows
    running = CampaignItem.objects.filter(state=ItemState.RUNNING)
    assert sorted(running.values_list("cmts", flat=True)) == ["cmts-00", "cmts-01", "cmts-02"]
    assert Operation.objects.count() == 3
    assert services.progress(run).open == services.MIN_WINDOW
    assert services.dispatch_run(run) == 0  # nothing settled: no room


def test_overall_cap_holds_across_many_cmtses():
    bulk_modems(40, groups=20)
    run = services.start_run(campaign(max_in_flight=7, max_per_cmts=2))

    assert services.dispatch_run(run) == 7
    assert CampaignItem.objects.filter(state=ItemState.RUNNING).count() == 7


def test_items_settle_with_retries_and_the_run_ends_with_true_counts():
    modems = [make_modem(i, cmts="a") for i in range(1, 4)]
    run = services.start_run(campaign(max_in_flight=3, max_per_cmts=3, retries=1))
    services.dispatch_run(run)
    items = {item.modem_id: item for item in CampaignItem.objects.all()}
    ok, flaky, dead = (items[modem.pk] for modem in modems)

    end(ok.operation, collected=1)
    end(flaky.operation, collected=0, outcome=Outcome.FAILED, reason="SnmpTimeout")
    end(dead.operation, collected=0, outcome=Outcome.FAILED, reason="SnmpTimeout")
    flaky.refresh_from_db()
    assert (flaky.state, flaky.attempts, flaky.error_class) == ("queued", 1, "SnmpTimeout")

    assert services.dispatch_run(run) == 2  # both retried
    flaky.refresh_from_db()
    dead.refresh_from_db()
    end(flaky.operation, collected=1)
    end(dead.operation, collected=0, outcome=Outcome.FAILED, reason="SnmpTimeout")
    services.dispatch_run(run)

    run.refresh_from_db()
    counts = services.progress(run)
    assert run.state == RunState.COMPLETED_PARTIAL
    assert (run.planned, counts.done, counts.failed, counts.skipped) == (3, 2, 1, 0)
    assert counts.failed_by_class == {"SnmpTimeout": 1}
    dead.refresh_from_db()
    assert (dead.state, dead.attempts) == ("failed", 2)


def test_busy_modems_are_skipped_with_their_reason_not_failed():
    make_modem(1)
    run = services.start_run(campaign(retries=0))
    services.dispatch_run(run)
    item = CampaignItem.objects.get()

    end(item.operation, collected=0, outcome=Outcome.SKIPPED, reason="modem busy")
    services.dispatch_run(run)

    run.refresh_from_db()
    counts = services.progress(run)
    assert (run.state, counts.skipped, counts.skipped_by_reason) == (
        RunState.FAILED, 1, {"modem busy": 1},
    )  # fmt: skip
    assert run.error == "modem busy: 1"


def test_every_modem_done_is_completed_and_nothing_else_is():
    make_modem(1)
    make_modem(2)
    run = services.start_run(campaign())
    services.dispatch_run(run)
    first, second = CampaignItem.objects.order_by("pk")

    end(first.operation, collected=1)
    services.dispatch_run(run)
    run.refresh_from_db()
    assert run.state == RunState.RUNNING  # one still running
    end(second.operation, collected=1)
    services.dispatch_run(run)
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED
    assert services.progress(run).done == run.planned == 2


def test_modems_removed_or_ipv6_managed_are_skipped_with_reasons():
    make_modem(1)
    make_modem(2, ip_address="::1")
    gone = make_modem(3)
    run = services.start_run(campaign(max_in_flight=1))
    services.dispatch_run(run)  # expands all three, starts the first
    gone.delete()  # before the run reaches it (a modem with operations is protected)

    for _ in range(5):
        running = CampaignItem.objects.filter(state=ItemState.RUNNING).first()
        if running is not None:
            end(running.operation, collected=1)
        services.dispatch_run(run)

    run.refresh_from_db()
    counts = services.progress(run)
    assert run.state == RunState.COMPLETED_PARTIAL
    assert counts.skipped_by_reason == {services.IPV6_MANAGED: 1, services.MODEM_REMOVED: 1}
    assert (counts.done, counts.skipped) == (1, 2)


def test_an_empty_target_gives_a_failed_run_saying_so():
    run = services.start_run(campaign(target={"filter": {"cmts": "nowhere"}}))

    assert (run.state, run.planned, run.error) == (RunState.FAILED, 0, services.EMPTY_TARGET)


def test_stopping_cancels_queued_items_and_stops_running_operations():
    bulk_modems(10, groups=1)
    run = services.start_run(campaign(max_in_flight=2, max_per_cmts=2))
    services.dispatch_run(run)

    assert services.stop_run(run)
    assert not services.stop_run(run)  # idempotent

    run.refresh_from_db()
    counts = services.progress(run)
    assert run.state == RunState.CANCELLED
    assert (counts.cancelled, counts.open) == (10, 0)
    assert set(Operation.objects.values_list("state", flat=True)) == {OperationState.STOPPED}


def test_a_modem_without_the_tests_channels_is_skipped_as_unsupported_not_retried():
    make_modem(1)
    run = services.start_run(campaign(retries=3))
    services.dispatch_run(run)
    item = CampaignItem.objects.get()

    end(item.operation, collected=0, outcome=Outcome.FAILED, reason="NoChannels")

    item.refresh_from_db()
    assert (item.state, item.attempts) == (ItemState.SKIPPED, 1)
    assert item.error_class == services.UNSUPPORTED["NoChannels"]


def test_beat_starts_a_scheduled_run_unless_disabled_or_still_running():
    from campaigns.tasks import start_campaign_run

    make_modem(1)
    scheduled = campaign(schedule="recurring", crontab="0 2 * * *")

    first = start_campaign_run(scheduled.pk)
    second = start_campaign_run(scheduled.pk)  # the first still runs: no double run
    Campaign.objects.filter(pk=scheduled.pk).update(enabled=False)
    CampaignRun.objects.update(state=RunState.COMPLETED)
    disabled = start_campaign_run(scheduled.pk)

    assert first == CampaignRun.objects.get().run_id
    assert (second, disabled) == ("", "")


def test_a_campaigns_trigger_carries_its_name_for_flower(django_capture_on_commit_callbacks):
    from config.celery_app import app

    make_modem(1)
    with app.connection_for_write() as conn, conn.SimpleQueue("snmp") as queue:
        queue.clear()
        run = services.start_run(campaign(name="north sweep"))
        with django_capture_on_commit_callbacks(execute=True):
            services.dispatch_run(run)
        message = queue.get(timeout=5)
        message.ack()

    item = CampaignItem.objects.get()
    assert message.headers["task"] == "captures.tasks.trigger_ticks"
    assert message.headers["shadow"] == (
        f"campaign north sweep run {run.run_id}: {item.mac_address}"
    )


def test_a_pass_starts_its_operations_in_the_same_statements_however_many():
    """Items, groups, operations: one statement each per pass, not per modem."""
    bulk_modems(60, groups=20)
    statements = []
    for count in (4, 20):
        run = services.start_run(
            campaign(name=f"sweep {count}", max_in_flight=count, max_per_cmts=1)
        )
        services._expand(run, window=services.MIN_WINDOW)  # the window, outside the count
        with CaptureQueriesContext(connection) as queries:
            assert services.dispatch_run(run) == count
        statements.append(len(queries.captured_queries))
        started = Operation.objects.filter(campaign_item__run=run)
        assert started.count() == count
        assert len(set(started.values_list("modem__cmts", flat=True))) == count  # 1 per CMTS
        assert all(started.values_list("summarise_files", flat=True))

    assert statements[0] == statements[1]


def test_a_pass_skips_removed_and_ipv6_modems_and_starts_the_rest_together():
    make_modem(1)
    removed = make_modem(2)
    make_modem(3, ip_address="::1")
    make_modem(4)
    run = services.start_run(campaign(max_in_flight=4, max_per_cmts=4))
    services._expand(run, window=services.MIN_WINDOW)
    removed.delete()

    assert services.dispatch_run(run) == 2

    states = dict(CampaignItem.objects.values_list("mac_address", "state"))
    reasons = dict(CampaignItem.objects.values_list("mac_address", "error_class"))
    assert list(states.values()) == ["running", "skipped", "skipped", "running"]
    assert list(reasons.values()) == ["", services.MODEM_REMOVED, services.IPV6_MANAGED, ""]
    assert Operation.objects.count() == 2
