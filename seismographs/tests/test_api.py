"""The seismograph API and admin on a warm cache: no worker, no device I/O needed.

The cache is filled in-process by the same session functions a worker runs; every request
here must then be answered from it (the simulator's session count proves no dial).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Permission
from django_celery_results.models import TaskResult
from rest_framework.test import APIClient

from seismographs import cache as seismo_cache
from seismographs import services
from seismographs.models import SeismoEvent, Seismograph, SeismoWaveform
from seismographs.protocol.errors import LinkRefused
from simulators.seismograph import SeismographSimulator
from tests.helpers import token_client

pytestmark = pytest.mark.django_db
BASE = "/api/v1/devices/seismographs/"


@pytest.fixture
def sim() -> Iterator[SeismographSimulator]:
    with SeismographSimulator(events=2, time_scale=0.0, serial="BE20002") as unit:
        yield unit


@pytest.fixture
def warm(sim: SeismographSimulator) -> Seismograph:
    """A unit whose info, events and waveform 1 are cached."""
    device = Seismograph.objects.create(conn_key=sim.conn_key, link_timeout_s=1, idle_gap_s=0.05)
    seismo_cache.clear_device(device.pk)
    now = time.time()
    services.refresh_info(device.pk, now)
    services.sync_events(device.pk, now)
    services.fetch_waveform(device.pk, 1, False, lambda d, t: None)
    device.refresh_from_db()
    return device


def test_requires_authentication():
    assert APIClient().get(BASE).status_code in (401, 403)


def test_create_from_parts_and_reject_bad_conn_key(viewer_client, operator_client):
    assert viewer_client.post(BASE, {"host": "10.0.0.5"}, format="json").status_code == 403
    made = operator_client.post(BASE, {"host": "10.0.0.5", "tcp_port": 12345}, format="json")
    assert made.status_code == 201
    assert made.json()["conn_key"] == "tcp:10.0.0.5:12345"
    serial = operator_client.post(BASE, {"port": "/dev/ttyUSB0"}, format="json").json()
    assert serial["conn_key"] == "serial:/dev/ttyUSB0:38400"
    for conn_key in ("ftp:nowhere", "serial:spy:///dev/ttyS0?file=/tmp/x:38400"):
        bad = operator_client.post(BASE, {"conn_key": conn_key}, format="json")
        assert bad.status_code == 400
        assert "conn_key" in bad.json()
    dup = operator_client.post(BASE, {"host": "10.0.0.5", "tcp_port": 12345}, format="json")
    assert "conn_key" in dup.json()


def test_cached_reads_carry_provenance(viewer_client, warm, sim):
    sessions = sim.sessions
    url = f"{BASE}{warm.pk}/"
    for path in ("info/", "events/", "events/1/"):
        body = viewer_client.get(url + path).json()
        assert body["source"] == "cache"
        assert body["stale"] is False
        assert body["last_error"] is None
        assert body["age_s"] >= 0
        assert body["fetched_at"]
    assert viewer_client.get(url + "info/").json()["data"]["serial"] == "BE20002"
    assert viewer_client.get(url + "events/5/").status_code == 404
    assert sim.sessions == sessions


def test_waveform_json_etag_and_raw(viewer_client, warm, sim):
    sessions = sim.sessions
    url = f"{BASE}{warm.pk}/events/1/waveform/"
    reply = viewer_client.get(url, {"max_points": 200})
    assert reply.status_code == 200
    plot = reply.json()["data"]
    assert plot["npts_display"] <= 200
    assert len(plot["time_s"]) == len(plot["channels"][0]["data"])
    for channel in plot["channels"]:
        assert max(abs(v) for v in channel["data"]) == pytest.approx(channel["peak"])
    header = plot["event"]
    assert plot["channels"][2]["peak"] == pytest.approx(header["peaks"]["Long"]["ppv"], rel=1e-4)
    assert reply["Cache-Control"].endswith("immutable")
    again = viewer_client.get(url, {"max_points": 200}, HTTP_IF_NONE_MATCH=reply["ETag"])
    assert again.status_code == 304
    assert viewer_client.get(url, {"max_points": 3}).status_code == 400
    raw = viewer_client.get(url + "raw/")
    assert raw.content == sim.unit.waveform_body(1)
    assert raw["ETag"] != reply["ETag"]
    assert (raw["X-Source"], raw["X-Stale"], raw["X-Last-Error"]) == ("cache", "false", "")
    assert raw["X-Fetched-At"]
    assert sim.sessions == sessions


def test_config_validation_names_the_field(operator_client, warm):
    url = f"{BASE}{warm.pk}/config/"
    cases = {
        "sample_rate": {"sample_rate": 1000},
        "record_time": {"record_time": 0},
        "alarm_level_geo": {"alarm_level_geo": 11.0},  # above the cached 10 in/s range
        "project": {"project": "x" * 40},
        "pre_trigger": {"pre_trigger": 5.0},  # not shorter than the cached 3 s record
        "non_field_errors": {},
    }
    for field, payload in cases.items():
        reply = operator_client.post(url, payload, format="json")
        assert reply.status_code == 400, field
        assert field in reply.json(), (field, reply.json())


def test_erase_is_for_operators_only(viewer_client, warm, django_user_model):
    assert viewer_client.post(f"{BASE}{warm.pk}/erase/").status_code == 403
    # Staff status grants nothing by itself: the permission does.
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    assert token_client(staff).post(f"{BASE}{warm.pk}/erase/").status_code == 403
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_seismograph", "erase_seismograph"])
    )
    # Allowed now: an unknown unit is a 404 (no command is sent to a real one here).
    assert token_client(staff, name="second").post(f"{BASE}999999/erase/").status_code == 404


def test_cache_stats_and_clear(viewer_client, operator_client, warm):
    url = f"{BASE}{warm.pk}/cache/"
    viewer_client.get(f"{BASE}{warm.pk}/events/")
    stats = viewer_client.get(url).json()
    assert stats["events"] == 2
    assert stats["waveforms"] == 1
    layers = stats["layers"]
    assert layers["waveforms"]["bytes"] < layers["waveforms"]["raw_bytes"]
    assert layers["events"]["hits"] == 1
    assert layers["info"]["rows"] == 1
    assert layers["info"]["bytes"] > 0
    assert set(layers) == {"info", "events", "waveforms", "monitor"}
    assert "layers" in viewer_client.get(BASE + "cache-stats/").json()
    assert viewer_client.delete(url).status_code == 403  # drops stored history: operators only
    cleared = operator_client.delete(url).json()["cleared"]
    assert cleared["events"] == 2
    assert cleared["waveforms"] == 1
    assert viewer_client.get(url).json()["events"] == 0


def test_deleting_a_unit_is_for_operators_only(viewer_client, operator_client, warm):
    assert viewer_client.delete(f"{BASE}{warm.pk}/").status_code == 403
    assert Seismograph.objects.filter(pk=warm.pk).exists()
    assert operator_client.delete(f"{BASE}{warm.pk}/").status_code == 204
    assert not Seismograph.objects.exists()


def test_task_status_of_unknown_task_is_pending(viewer_client):
    body = viewer_client.get("/api/v1/devices/tasks/0123abcd/").json()
    assert body["status"] == "pending"


def test_task_status_shows_only_device_tasks_and_no_exception_text(viewer_client):
    TaskResult.objects.create(
        task_id="other-app", task_name="captures.tasks.stage", status="SUCCESS", result="{}"
    )
    assert viewer_client.get("/api/v1/devices/tasks/other-app/").status_code == 404
    failure = {
        "exc_type": "OperationalError",
        "exc_module": "builtins",
        "exc_message": ["connection to db.internal:5432 failed"],
    }
    TaskResult.objects.create(
        task_id="crashed",
        task_name="devices.tasks.sync_events",
        status="FAILURE",
        result=json.dumps(failure),
    )
    body = viewer_client.get("/api/v1/devices/tasks/crashed/").json()
    assert body["status"] == "failed"
    assert "db.internal" not in json.dumps(body)


def test_admin_pages_and_waveform_plot(warm, admin_client):
    services.note_failure(warm.pk, LinkRefused("connection refused"))
    units = admin_client.get("/admin/seismographs/seismograph/")
    assert units.status_code == 200
    assert b"s ago" in units.content  # cache age of the info and the event list
    assert b"refused: connection refused" in units.content
    assert admin_client.get("/admin/seismographs/seismoevent/").status_code == 200
    row = SeismoWaveform.objects.get()
    page = admin_client.get(f"/admin/seismographs/seismowaveform/{row.pk}/change/")
    assert page.status_code == 200
    assert b"plot.png" in page.content
    png = admin_client.get(f"/admin/seismographs/seismowaveform/{row.pk}/plot.png")
    assert png["Content-Type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    # Reported data is not deleted by hand (only through the unit's clear_cache action).
    assert (
        admin_client.get(f"/admin/seismographs/seismowaveform/{row.pk}/delete/").status_code == 403
    )
    event = SeismoEvent.objects.first()
    assert event is not None
    assert (
        admin_client.post(f"/admin/seismographs/seismoevent/{event.pk}/delete/").status_code == 403
    )
    assert SeismoEvent.objects.filter(pk=event.pk).exists()
    cleared = admin_client.post(
        "/admin/seismographs/seismograph/",
        {"action": "clear_cache", "_selected_action": [warm.pk]},
    )
    assert cleared.status_code == 302
    assert not SeismoWaveform.objects.exists()


def test_waveform_beyond_a_fresh_count_is_404_without_a_dial(viewer_client, warm, sim):
    sessions = sim.sessions
    assert viewer_client.get(f"{BASE}{warm.pk}/events/7/waveform/").status_code == 404
    assert viewer_client.get(f"{BASE}{warm.pk}/events/7/waveform/raw/").status_code == 404
    assert sim.sessions == sessions
