"""Campaigns in the admin: started from the modem changelist (selected or every filtered
modem), a run's progress and worst modems, stopping runs, who sees the action."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from campaigns import services
from campaigns.models import Campaign, CampaignItem, CampaignRun, ItemState
from tests.factories import make_modem

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/devices/cablemodem/"
RXMER = "DS_OFDM_RXMER_PER_SUBCAR"


def rxmer_over_every_modem(name: str) -> Campaign:
    """A campaign started now: one RxMER capture on every modem."""
    return services.create_campaign(
        name=name, target={"all": True}, plan={"name": "single_capture",
        "measure_mode": "single", "test": RXMER, "parameters": {RXMER: {}}, "duration_s": 1,
        "sample_interval_s": 1, "channel_ids": None}, max_in_flight=5, max_per_cmts=5,
        retries=0, mer_threshold_db=30.0, schedule="now",
    )  # fmt: skip


def test_an_operator_starts_a_campaign_over_the_selected_modems(admin_client):
    modems = [make_modem(i, cmts="a") for i in range(1, 4)]
    selected = {"action": "start_campaign", "_selected_action": [m.pk for m in modems[:2]]}

    form = admin_client.post(CHANGELIST, selected)
    assert form.status_code == 200
    assert b"Start a PNM campaign" in form.content
    assert b"Over 2 modem(s)" in form.content

    refused = admin_client.post(
        CHANGELIST,
        {**selected, "apply": "Start", "name": "x", "test": RXMER, "max_in_flight": 100,
         "max_per_cmts": 99, "retries": 1, "mer_threshold_db": 30},
    )  # fmt: skip
    assert refused.status_code == 200
    assert b"at most 32" in refused.content  # on the field, in words, no JSON
    assert b"[&quot;" not in refused.content
    assert not Campaign.objects.exists()

    started = admin_client.post(
        CHANGELIST,
        {**selected, "apply": "Start", "name": "two", "test": RXMER, "max_in_flight": 10,
         "max_per_cmts": 4, "retries": 0, "mer_threshold_db": 35},
        follow=True,
    )  # fmt: skip
    assert started.status_code == 200
    campaign = Campaign.objects.get()
    assert campaign.target == {"modems": [modems[0].pk, modems[1].pk]}
    assert (campaign.max_per_cmts, campaign.retries, campaign.mer_threshold_db) == (4, 0, 35)
    assert b"started over 2 modems" in started.content
    assert CampaignRun.objects.get().planned == 2


def test_select_all_takes_every_modem_the_changelist_filter_shows(admin_client):
    modems = [make_modem(i, cmts="north" if i % 2 else "south") for i in range(1, 6)]
    # The page's boxes are ticked, then "select all 3": the action gets the whole filter.
    across = {
        "action": "start_campaign",
        "select_across": "1",
        "_selected_action": [modems[0].pk],
    }

    admin_client.post(
        f"{CHANGELIST}?cmts__exact=north",
        {**across, "apply": "Start", "name": "north", "test": RXMER, "max_in_flight": 10,
         "max_per_cmts": 4, "retries": 0, "mer_threshold_db": 30},
    )  # fmt: skip

    campaign = Campaign.objects.get()
    north = [modem.pk for modem in modems if modem.cmts == "north"]
    assert campaign.target == {"modems": north}
    assert len(north) == 3


def test_a_run_page_shows_progress_per_cmts_and_the_worst_modems(admin_client):
    make_modem(1, cmts="a")
    make_modem(2, cmts="b")
    campaign = rxmer_over_every_modem("seen")
    run = campaign.runs.get()
    services.dispatch_run(run)
    worst = CampaignItem.objects.order_by("pk")[0]
    CampaignItem.objects.filter(pk=worst.pk).update(
        state=ItemState.DONE, metric="rxmer_p2_db", value=21.5, worse="lower"
    )

    page = admin_client.get(f"/admin/campaigns/campaignrun/{run.pk}/change/")

    assert page.status_code == 200
    assert b"<th>done</th><td>1</td>" in page.content
    assert b"<th>running</th><td>1</td>" in page.content
    assert b"21.50" in page.content
    assert worst.mac_address.encode() in page.content
    assert admin_client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").status_code == 200

    admin_client.post(
        "/admin/campaigns/campaignrun/",
        {"action": "stop_runs", "_selected_action": [run.pk]},
    )
    run.refresh_from_db()
    assert run.state == "cancelled"


def test_the_campaign_action_needs_the_add_campaign_permission(client, django_user_model):
    make_modem(1)
    user = django_user_model.objects.create_user("looker", password="pw-12345678", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_cablemodem"))
    client.force_login(user)

    page = client.get(CHANGELIST)

    assert page.status_code == 200
    assert b"start_campaign" not in page.content


def test_a_running_run_is_not_deleted_until_it_is_stopped(admin_client):
    make_modem(1)
    campaign = rxmer_over_every_modem("kept")
    stopped = campaign.runs.get()
    services.dispatch_run(stopped)
    services.stop_run(stopped)
    finished = services.start_scheduled_run(campaign)
    assert finished is not None
    CampaignRun.objects.filter(pk=finished.pk).update(state="completed")
    running = services.start_scheduled_run(campaign)
    assert running is not None
    url = f"/admin/campaigns/campaignrun/{running.pk}/delete/"

    assert admin_client.get(url).status_code == 403
    both = [running.pk, finished.pk]
    refused = admin_client.post(
        "/admin/campaigns/campaignrun/",
        {"action": "delete_selected", "_selected_action": both, "post": "yes"},
    )
    states = CampaignRun.objects.filter(campaign=campaign).order_by("pk")
    assert refused.status_code == 403  # nothing deleted: a selected run is still running
    assert list(states.values_list("state", flat=True)) == ["cancelled", "completed", "running"]

    admin_client.post(
        "/admin/campaigns/campaignrun/",
        {"action": "delete_selected", "_selected_action": [finished.pk], "post": "yes"},
    )
    assert list(states.values_list("state", flat=True)) == ["cancelled", "running"]


def test_the_modem_list_shows_the_worst_first_whichever_way_the_metric_runs(admin_client):
    make_modem(1)
    make_modem(2)
    make_modem(3)
    run = rxmer_over_every_modem("ranked").runs.get()
    services.dispatch_run(run)
    items = list(CampaignItem.objects.order_by("pk"))
    for item, value in zip(items, (0.01, 0.3, None), strict=True):
        CampaignItem.objects.filter(pk=item.pk).update(
            state=ItemState.DONE, metric="fec_uncorrectable_ratio", value=value, worse="higher"
        )

    page = admin_client.get("/admin/campaigns/campaignitem/").content.decode()

    shown = [page.index(item.mac_address) for item in items]
    assert shown[1] < shown[0] < shown[2]  # 0.3, then 0.01, then the modem without a value
    assert admin_client.get("/admin/campaigns/campaignitem/?o=-5").status_code == 200  # by value
