"""The campaigns API without devices: what it accepts, what it refuses (400 per field),
who may do what, what it schedules, and that no credential leaves it."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import ANY

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from campaigns.models import Campaign, CampaignItem, CampaignRun, RunState
from tests.factories import COMMUNITY, make_modem
from tests.helpers import assert_400_naming

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/api/v1/captures/campaigns/"
RXMER = "DS_OFDM_RXMER_PER_SUBCAR"


def fleet(count: int, cmts: str = "cmts-a", first: int = 1) -> list:
    return [make_modem(first + i, cmts=cmts, tag="north") for i in range(count)]


def body(**fields) -> dict:
    return {"name": "nightly", "test": RXMER, "target": {"filter": {"cmts": "cmts-a"}}, **fields}


def test_a_campaign_over_a_filter_starts_a_run_of_the_matching_modems(operator_client):
    fleet(3, "cmts-a")
    fleet(2, "cmts-b", first=10)

    response = operator_client.post(CAMPAIGNS, body(), format="json")

    assert response.status_code == 201, response.content
    campaign = response.json()
    assert campaign["test"] == RXMER
    assert campaign["plan"]["parameters"] == {RXMER: {}}  # RxMER has no parameters
    run = campaign["latest_run"]
    assert (run["state"], run["planned"]) == ("running", 3)
    # Lazily expanded: no item exists before the dispatcher's first pass.
    assert run["progress"]["not_reached"] == 3
    assert not CampaignItem.objects.exists()
    assert COMMUNITY not in response.content.decode()
    assert set(campaign["links"]) == {"runs", "worst", "distribution"}


def test_targets_by_list_of_macs_and_ids_and_all(operator_client):
    modems = fleet(3)
    listed = [modems[0].mac_address, str(modems[2].pk)]

    by_list = operator_client.post(CAMPAIGNS, body(target={"modems": listed}), format="json")
    everything = operator_client.post(CAMPAIGNS, body(target={"all": True}), format="json")

    assert by_list.status_code == 201, by_list.content
    assert by_list.json()["target"] == {"modems": sorted([modems[0].pk, modems[2].pk])}
    assert by_list.json()["latest_run"]["planned"] == 2
    assert everything.json()["latest_run"]["planned"] == 3


def test_filters_combine_fields_and_accept_lists_and_mac_prefixes(operator_client):
    fleet(2, "cmts-a")
    fleet(2, "cmts-b", first=10)
    make_modem(20, cmts="cmts-c", mac_address="aa:bb:cc:00:00:01")

    both = operator_client.post(
        CAMPAIGNS,
        body(target={"filter": {"cmts": ["cmts-a", "cmts-b"], "tag": "north"}}),
        format="json",
    )
    prefix = operator_client.post(
        CAMPAIGNS, body(target={"filter": {"mac_prefix": "AA-BB-CC"}}), format="json"
    )

    assert both.json()["latest_run"]["planned"] == 4
    assert prefix.json()["latest_run"]["planned"] == 1


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"target": {"filter": {"cmts": "nowhere"}}}, ["target"]),
        ({"target": {"filter": {"colour": "red"}}}, ["target", "filter"]),
        ({"target": {"filter": {}}}, ["target", "filter"]),
        ({"target": {"modems": ["02:00:5e:99:99:99"]}}, ["target", "modems"]),
        ({"target": {"modems": ["not-a-mac"]}}, ["target", "modems"]),
        ({"target": {"modems": []}}, ["target", "modems"]),
        ({"target": {"all": True, "filter": {"cmts": "cmts-a"}}}, ["target"]),
        ({"target": {"filter": {"mac_prefix": "zz"}}}, ["target", "filter"]),
        ({"test": "DS_BOGUS"}, ["test"]),
        ({"test": "multi_rxmer"}, ["duration_s"]),
        ({"test": "DS_HISTOGRAM", "parameters": {"timeout_s": 0}}, ["parameters"]),
        ({"test": "DS_HISTOGRAM", "parameters": {"colour": 1}}, ["parameters"]),
        ({"max_per_cmts": 33}, ["max_per_cmts"]),  # PNM_MAX_IN_FLIGHT_PER_CMTS is 32
        ({"max_in_flight": 501}, ["max_in_flight"]),  # CAMPAIGN_MAX_IN_FLIGHT is 500
        ({"max_in_flight": 0}, ["max_in_flight"]),
        ({"retries": 6}, ["retries"]),
        ({"schedule": "at"}, ["start_at"]),
        ({"schedule": "at", "start_at": "2020-01-01T00:00:00Z"}, ["start_at"]),
        ({"schedule": "recurring", "crontab": "0 2 * *"}, ["crontab"]),
        ({"schedule": "recurring", "crontab": "99 2 * * *"}, ["crontab"]),
        ({"crontab": "0 2 * * *"}, ["crontab"]),
    ],
)
def test_bad_requests_are_refused_naming_the_field(operator_client, fields, path):
    fleet(2)

    response = operator_client.post(CAMPAIGNS, body(**fields), format="json")

    assert_400_naming(response, path)
    assert not Campaign.objects.exists()


def test_a_multi_family_campaign_keeps_its_schedule_per_modem(operator_client):
    fleet(1)

    response = operator_client.post(
        CAMPAIGNS,
        body(test="multi_rxmer", duration_s=60, sample_interval_s=20),
        format="json",
    )

    assert response.status_code == 201, response.content
    plan = response.json()["plan"]
    assert (plan["name"], plan["measure_mode"], plan["duration_s"]) == (
        "multi_rxmer", "continuous", 60,
    )  # fmt: skip


def test_a_recurring_campaign_gets_a_crontab_entry_and_no_run_yet(operator_client):
    fleet(1)

    response = operator_client.post(
        CAMPAIGNS, body(schedule="recurring", crontab="30 2 * * *"), format="json"
    )

    assert response.status_code == 201, response.content
    campaign = Campaign.objects.get()
    entry = PeriodicTask.objects.get(name=campaign.schedule_name)
    assert entry.task == "campaigns.tasks.start_campaign_run"
    assert entry.crontab is not None
    assert (entry.crontab.minute, entry.crontab.hour) == ("30", "2")
    assert response.json()["latest_run"] is None


def test_a_campaign_at_a_time_gets_a_one_off_clocked_entry(operator_client):
    fleet(1)
    at = timezone.now() + timedelta(hours=3)

    response = operator_client.post(
        CAMPAIGNS, body(schedule="at", start_at=at.isoformat()), format="json"
    )

    assert response.status_code == 201, response.content
    entry = PeriodicTask.objects.get(name=Campaign.objects.get().schedule_name)
    assert entry.one_off
    assert entry.clocked is not None
    assert entry.clocked.clocked_time == at


def test_run_again_is_refused_while_a_run_is_going_then_allowed(operator_client):
    fleet(1)
    campaign = operator_client.post(CAMPAIGNS, body(), format="json").json()
    url = f"{CAMPAIGNS}{campaign['campaign_id']}/"

    again = operator_client.post(f"{url}run/")
    stopped = operator_client.post(f"{url}stop/")
    after_stop = operator_client.post(f"{url}run/")

    assert again.status_code == 409
    assert [run["state"] for run in stopped.json()] == ["cancelled"]
    assert after_stop.status_code == 201
    assert CampaignRun.objects.filter(state=RunState.RUNNING).count() == 1


def test_viewers_read_but_cannot_start_or_stop(viewer_client, operator_client):
    fleet(1)
    campaign = operator_client.post(CAMPAIGNS, body(), format="json").json()
    url = f"{CAMPAIGNS}{campaign['campaign_id']}/"

    assert viewer_client.get(CAMPAIGNS).status_code == 200
    assert viewer_client.get(url).status_code == 200
    assert viewer_client.post(CAMPAIGNS, body(), format="json").status_code == 403
    assert viewer_client.post(f"{url}stop/").status_code == 403
    assert viewer_client.post(f"{url}run/").status_code == 403


def test_results_of_a_run_without_summaries_are_empty_not_errors(operator_client):
    fleet(1)
    campaign = operator_client.post(CAMPAIGNS, body(), format="json").json()
    url = f"{CAMPAIGNS}{campaign['campaign_id']}/"

    assert operator_client.get(f"{url}worst/").json() == []
    assert operator_client.get(f"{url}distribution/").json()["per_cmts"] == {}
    assert operator_client.get(f"{url}distribution/?format=png").status_code == 404
    assert_400_naming(operator_client.get(f"{url}distribution/?format=gif"), ["format"])
    assert operator_client.get(f"{url}worst/?run=0123456789abcdef").status_code == 404


def test_an_ipv6_managed_modem_in_a_list_is_refused(operator_client):
    modem = make_modem(1, ip_address="2001:db8::7")

    response = operator_client.post(
        CAMPAIGNS, body(target={"modems": [modem.mac_address]}), format="json"
    )

    assert_400_naming(response, ["target", "modems"])
    assert "IPv4" in str(response.json())


def _campaign_with_items(index: int, operator_client) -> dict:
    """A campaign whose run has items in every state: ``index`` of each, some failed or
    skipped for a reason, one done modem whose summary could not be computed."""
    modems = fleet(6 * index, f"cmts-{index}", first=40 * index)
    campaign = operator_client.post(
        CAMPAIGNS, body(target={"filter": {"cmts": f"cmts-{index}"}}), format="json"
    ).json()
    run = CampaignRun.objects.get(run_id=campaign["latest_run"]["run_id"])
    states = ["done", "done", "failed", "skipped", "queued", "running"] * index
    CampaignItem.objects.bulk_create(
        CampaignItem(
            run=run,
            modem=modem,
            mac_address=modem.mac_address,
            cmts=modem.cmts,
            state=state,
            error_class={"failed": "SnmpTimeout", "skipped": "modem busy"}.get(state, ""),
            summarised=position != 0,
        )
        for position, (modem, state) in enumerate(zip(modems, states, strict=True))
    )
    return campaign


def test_the_list_counts_every_campaign_s_latest_run_in_a_fixed_number_of_queries(
    operator_client,
):
    campaigns = [_campaign_with_items(index, operator_client) for index in (1, 2)]
    with CaptureQueriesContext(connection) as few:
        listed = operator_client.get(CAMPAIGNS).json()["results"]
    campaigns += [_campaign_with_items(index, operator_client) for index in (3, 4, 5)]
    with CaptureQueriesContext(connection) as more:
        listed_more = operator_client.get(CAMPAIGNS).json()["results"]

    assert (len(listed), len(listed_more)) == (2, 5)
    assert len(more.captured_queries) == len(few.captured_queries)
    for entry in listed_more:  # the counts of the campaign's own page
        detail = operator_client.get(f"{CAMPAIGNS}{entry['campaign_id']}/").json()
        expected = detail["latest_run"]["progress"]
        del expected["per_cmts"]
        timing = {"elapsed_s": ANY, "rate_per_s": ANY, "eta_s": ANY}  # read a moment apart
        assert entry["latest_run"]["progress"] == {**expected, **timing}
    by_id = {entry["campaign_id"]: entry["latest_run"]["progress"] for entry in listed_more}
    third = by_id[campaigns[2]["campaign_id"]]
    assert (third["done"], third["failed"], third["skipped"]) == (6, 3, 3)
    assert (third["queued"], third["running"]) == (3, 3)
    assert third["failed_by_class"] == {"SnmpTimeout": 3}
    assert third["skipped_by_reason"] == {"modem busy": 3}
    assert third["summaries_missing"] == 1
