"""Campaigns end to end: the API, the admin and the CLI against simulated modems, with a
real beat (the dispatcher), a real worker, SNMP and TFTP over 127.0.0.1, PostgreSQL and
Redis. Summaries are checked against plain arithmetic on the files the modems uploaded."""

from __future__ import annotations

import importlib
import io
import statistics
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command

from campaigns.models import CampaignItem, CampaignRun, ItemState, RunState
from captures.analysis import load_transaction
from captures.models import Operation, Transaction
from captures.pnm import RxMer
from captures.tests.conftest import seed_sweeper, start_beat
from simulators.modem import Failure
from tests.factories import register_modem
from tests.helpers import stop_process, wait_until, worker_environment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CAMPAIGNS = "/api/v1/captures/campaigns/"
RXMER = "DS_OFDM_RXMER_PER_SUBCAR"


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[None]:
    """Beat, with the campaign dispatcher's periodic task (as migration 0002 seeds it) and
    the sweeper's: a transactional test's flush took the migrations' rows. Seeded before
    beat starts: beat logs "Starting..." before it reads its schedule, so an entry added
    then could be read neither with the schedule nor as a change after it (the campaign
    never started, now and then, in long runs)."""
    seed_sweeper()
    importlib.import_module("campaigns.migrations.0002_dispatcher_and_roles").seed(
        django_apps, None
    )
    proc = start_beat(tmp_path, worker_environment())
    yield
    stop_process(proc, 10)


def footprint(farm, groups: int, per_group: int, failures=None) -> list:
    sims = farm(groups * per_group, failures=failures or {})
    modems = []
    for index, sim in enumerate(sims):
        modem = register_modem(sim)
        modem.cmts = f"cmts-{index % groups}"
        modem.save(update_fields=["cmts"])
        modems.append(modem)
    return modems


def ended(run_id: str, timeout: float = 120) -> CampaignRun:
    return wait_until(
        lambda: CampaignRun.objects.exclude(state=RunState.RUNNING).filter(run_id=run_id).first(),
        timeout,
    )


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = open_now = 0
    for _, step in events:
        open_now += step
        most = max(most, open_now)
    return most


def independent_figures(operation: Operation | None, threshold_db: float) -> dict:
    """RxMER figures of the operation's stored files, by plain Python arithmetic."""
    assert operation is not None
    values: list[float] = []
    for record in Transaction.objects.filter(capture__operation=operation):
        parsed = load_transaction(record)
        assert isinstance(parsed, RxMer)
        codes = parsed.raw.tolist()  # the quarter-dB codes as uploaded
        values += [code / 4 for code in codes if code != 0xFF]
    cuts = statistics.quantiles(values, n=100, method="inclusive")  # numpy's "linear"
    return {
        "mean_db": statistics.fmean(values),
        "p2_db": cuts[1],
        "min_db": min(values),
        "below_threshold": sum(value < threshold_db for value in values),
        "subcarriers": len(values),
    }


def test_a_campaign_over_three_cmtses_keeps_its_caps_and_counts_every_modem(
    pnm_worker, farm, dispatcher, operator_client
):
    modems = footprint(farm, groups=3, per_group=3, failures={8: Failure.TIMEOUT})
    dead = modems[8]

    response = operator_client.post(
        CAMPAIGNS,
        {
            "name": "rxmer sweep",
            "test": RXMER,
            "target": {"filter": {"cmts": ["cmts-0", "cmts-1", "cmts-2"]}},
            "max_in_flight": 4,
            "max_per_cmts": 2,
            "retries": 1,
            "mer_threshold_db": 39.0,
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    campaign = response.json()
    run = ended(campaign["latest_run"]["run_id"])
    body = operator_client.get(f"{CAMPAIGNS}{campaign['campaign_id']}/").json()
    progress = body["latest_run"]["progress"]
    # The plan and the outcome, recorded apart: 9 planned, 8 captured, 1 failed twice.
    assert (run.state, run.planned) == (RunState.COMPLETED_PARTIAL, 9)
    assert (progress["done"], progress["failed"], progress["skipped"]) == (8, 1, 0)
    assert (progress["queued"], progress["running"], progress["not_reached"]) == (0, 0, 0)
    assert list(progress["failed_by_class"].values()) == [1]
    dead_item = CampaignItem.objects.get(modem=dead)
    assert (dead_item.state, dead_item.attempts) == (ItemState.FAILED, 2)
    assert progress["per_cmts"]["cmts-2"]["failed"] == 1
    assert sum(row["done"] for row in progress["per_cmts"].values()) == 8

    # The caps held: every operation the run started, timed from the database.
    operations = Operation.objects.filter(modem__in=modems)
    assert operations.count() == 10  # 9 modems, one retried
    intervals = {
        cmts: [
            (op.started_at, op.finished_at)
            for op in operations.filter(modem__cmts=cmts)
            if op.started_at and op.finished_at
        ]
        for cmts in ("cmts-0", "cmts-1", "cmts-2")
    }
    assert all(max_overlap(spans) <= 2 for spans in intervals.values()), intervals
    assert max_overlap([span for spans in intervals.values() for span in spans]) <= 4

    # Summaries, computed as each modem's files arrived, agree with plain arithmetic.
    assert not CampaignItem.objects.filter(state="done", summarised=False).exists()
    for item in CampaignItem.objects.filter(state=ItemState.DONE).select_related("operation"):
        expected = independent_figures(item.operation, 39.0)
        assert item.metric == "rxmer_p2_db"
        assert item.figures is not None
        assert item.value == pytest.approx(expected["p2_db"], abs=1e-4)  # 4 decimals kept
        for key, value in expected.items():
            assert item.figures[key] == pytest.approx(value, abs=1e-3), key

    worst = operator_client.get(f"{CAMPAIGNS}{campaign['campaign_id']}/worst/?n=3").json()
    done = CampaignItem.objects.filter(state="done").values_list("value", flat=True)
    values = sorted(value for value in done if value is not None)
    assert [row["value"] for row in worst] == pytest.approx(values[:3])
    assert all(row["links"]["capture"].startswith("http") for row in worst)
    assert "community" not in str(worst)

    stats = operator_client.get(f"{CAMPAIGNS}{campaign['campaign_id']}/distribution/").json()
    assert sum(row["count"] for row in stats["per_cmts"].values()) == 8
    csv = operator_client.get(f"{CAMPAIGNS}{campaign['campaign_id']}/distribution/?format=csv")
    assert csv.status_code == 200
    png = operator_client.get(f"{CAMPAIGNS}{campaign['campaign_id']}/distribution/?format=png")
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_campaign_of_unreachable_modems_fails_with_the_reasons_counted(
    pnm_worker, farm, dispatcher, operator_client
):
    footprint(farm, groups=1, per_group=3, failures=dict.fromkeys(range(3), Failure.TIMEOUT))

    response = operator_client.post(
        CAMPAIGNS,
        {"name": "dark", "test": RXMER, "target": {"all": True}, "retries": 0},
        format="json",
    )

    run = ended(response.json()["latest_run"]["run_id"])
    progress = operator_client.get(f"{CAMPAIGNS}{response.json()['campaign_id']}/").json()[
        "latest_run"
    ]["progress"]
    assert run.state == RunState.FAILED
    assert (progress["done"], progress["failed"]) == (0, 3)
    assert sum(progress["failed_by_class"].values()) == 3
    assert run.error  # the reasons, counted


def test_the_cli_starts_a_campaign_and_streams_its_progress_to_the_end(
    pnm_worker, farm, dispatcher
):
    footprint(farm, groups=2, per_group=2)
    out = io.StringIO()

    call_command(
        "campaign", "run", "--name", "cli", "--test", RXMER, "--filter", "--cmts", "cmts-1",
        "--every", "0.2", stdout=out,
    )  # fmt: skip

    text = out.getvalue()
    assert "started" in text
    assert "[##############################] 2/2 done 2 failed 0 skipped 0" in text
    assert "completed: 2/2 settled: 2 done" in text
    assert CampaignRun.objects.get().planned == 2
