"""The twelve cache scenarios of seismograph.md §5.5, end to end.

Through the REST API, with real ``serial`` workers, Redis, PostgreSQL and the simulated
units of ``simulators.seismograph`` (over TCP, and one over a pty). Device I/O is
counted at the simulator: ``sessions`` (POLL handshakes) and per-SUB ``command_counts``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from billiard.exceptions import TimeLimitExceeded
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from config.celery_app import app
from seismographs import cache as seismo_cache
from seismographs.models import SeismoEvent, Seismograph, SeismoWaveform
from simulators.seismograph import SeismographSimulator
from tests.helpers import role_user, token_client, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BASE = "/api/v1/devices/seismographs/"
HEADER_SUB = "0C"  # one 0C exchange pair (probe + fetch) per event header read
STREAM_SUB = "5A"
MONITOR_TTL_S = 3  # the workers write monitor status with this TTL (30 s in production)


@pytest.fixture(scope="module")
def workers(start_worker):
    """Two solo workers on ``serial``: two units can be served at the same time."""
    env = {
        "SEISMO_RETRY_BACKOFF_S": "0.1",
        "SEISMO_NEGATIVE_TTL_S": "5",
        "SEISMO_MONITOR_TTL_S": str(MONITOR_TTL_S),
        "SEISMO_LOCK_WAIT_S": "2",
    }
    return [start_worker("serial", **env), start_worker("serial", **env)]


@pytest.fixture
def api(workers, settings) -> APIClient:
    """The API as an operator, with the serial workers running."""
    settings.SEISMO_API_WAIT_S = 8.0
    settings.SEISMO_EVENTS_TTL_S = 60.0
    return token_client(role_user("operator", "operator"))


@pytest.fixture
def sims() -> Iterator[Callable[..., SeismographSimulator]]:
    started: list[SeismographSimulator] = []

    def make(events: int = 3, **options: Any) -> SeismographSimulator:
        options.setdefault("time_scale", 0.005)
        options.setdefault("serial", f"BE{18189 + len(started)}")
        sim = SeismographSimulator(events=events, **options).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def register(api: APIClient, sim: SeismographSimulator, timeout_s: float = 1.0) -> str:
    reply = api.post(
        BASE,
        {"conn_key": sim.conn_key, "link_timeout_s": timeout_s, "idle_gap_s": 0.05},
        format="json",
    )
    assert reply.status_code == 201, reply.content
    return f"{BASE}{reply.json()['id']}/"


def get(api: APIClient, url: str, **params: Any):
    return api.get(url, params)


def wait_task(api: APIClient, body: dict) -> dict:
    """Poll the task-status endpoint of a 202/refreshing answer until the task ended."""
    url = body["status_url"]

    def done():
        status = api.get(url).json()
        return status if status["status"] in ("succeeded", "failed") else None

    return wait_until(done, timeout=30)


def settled(api: APIClient, url: str):
    """GET; when the answer is a 202 (the worker was slower than the API wait), wait for
    the task and GET again: the retry of a dropped transfer may take a few seconds."""
    reply = api.get(url)
    if reply.status_code == 202:
        wait_task(api, reply.json())
        reply = api.get(url)
    return reply


def header_reads(sim: SeismographSimulator) -> int:
    return sim.command_counts[HEADER_SUB] // 2


# 1 -----------------------------------------------------------------------------------------


def test_cold_read_then_zero_device_io(api, sims):
    sim = sims(events=3)
    url = register(api, sim)
    events = get(api, url + "events/")
    assert events.status_code == 200, events.content
    body = events.json()
    assert body["source"] == "device"
    assert [e["index"] for e in body["data"]] == [0, 1, 2]
    assert header_reads(sim) == 3
    wave = get(api, url + "events/1/waveform/")
    assert wave.status_code == 200
    assert wave.json()["source"] == "device"
    assert sim.sessions == 2

    again = get(api, url + "events/")
    wave_again = get(api, url + "events/1/waveform/")
    assert again.json()["source"] == wave_again.json()["source"] == "cache"
    assert [e["has_waveform"] for e in again.json()["data"]] == [False, True, False]
    assert [e["timestamp"] for e in again.json()["data"]] == [e["timestamp"] for e in body["data"]]
    assert again["Age"] is not None
    assert sim.sessions == 2


# 2, 3 ---------------------------------------------------------------------------------------


def test_stale_probe_without_new_events_keeps_rows(api, sims, settings):
    sim = sims(events=2)
    url = register(api, sim)
    first = get(api, url + "events/").json()
    settings.SEISMO_EVENTS_TTL_S = 0
    stale = get(api, url + "events/").json()
    assert stale["stale"] is True
    assert stale["refreshing"] is True
    assert stale["source"] == "cache"
    assert stale["age_s"] is not None
    assert stale["data"] == first["data"]
    assert wait_task(api, stale)["status"] == "succeeded"
    settings.SEISMO_EVENTS_TTL_S = 60
    fresh = get(api, url + "events/").json()
    assert fresh["stale"] is False
    assert fresh["source"] == "cache"
    assert fresh["data"] == first["data"]
    assert sim.sessions == 2


def test_new_events_fetch_only_new_indices(api, sims, settings):
    sim = sims(events=3)
    url = register(api, sim)
    get(api, url + "events/")
    assert get(api, url + "events/0/waveform/").status_code == 200
    old = {e.device_index: (e.pk, e.fetched_at) for e in SeismoEvent.objects.all()}
    streams = sim.command_counts[STREAM_SUB]
    reads = header_reads(sim)

    sim.record_events(2)
    settings.SEISMO_EVENTS_TTL_S = 0
    wait_task(api, get(api, url + "events/").json())
    settings.SEISMO_EVENTS_TTL_S = 60
    body = get(api, url + "events/").json()
    assert [e["index"] for e in body["data"]] == [0, 1, 2, 3, 4]
    # index 2 (stamp check), index 0 (stamp check), then only the new 3 and 4
    assert header_reads(sim) - reads == 4
    assert {
        e.device_index: (e.pk, e.fetched_at)
        for e in SeismoEvent.objects.all()
        if e.device_index is not None and e.device_index < 3
    } == old
    assert get(api, url + "events/0/waveform/").json()["source"] == "cache"
    assert sim.command_counts[STREAM_SUB] == streams


# 4, 5 -----------------------------------------------------------------------------------------


def test_erase_then_fewer_events_flushes_keeps_history(api, sims, settings):
    sim = sims(events=3)
    url = register(api, sim)
    before = get(api, url + "events/").json()["data"]
    sim.erase_and_rerecord(1)
    settings.SEISMO_EVENTS_TTL_S = 0
    wait_task(api, get(api, url + "events/").json())
    after = get(api, url + "events/").json()["data"]
    assert len(after) == 1
    assert after[0]["waveform_key"] == before[0]["waveform_key"]  # the key came back
    assert after[0]["timestamp"] != before[0]["timestamp"]
    assert SeismoEvent.objects.count() == 4
    assert SeismoEvent.objects.filter(device_index__isnull=True).count() == 3


def test_erase_then_same_count_is_detected(api, sims, settings):
    sim = sims(events=2)
    url = register(api, sim)
    before = get(api, url + "events/").json()["data"]
    old_wave = get(api, url + "events/1/waveform/raw/")
    assert old_wave.status_code == 200
    sim.erase_and_rerecord()
    settings.SEISMO_EVENTS_TTL_S = 0
    wait_task(api, get(api, url + "events/").json())
    settings.SEISMO_EVENTS_TTL_S = 60
    after = get(api, url + "events/").json()["data"]
    assert [e["waveform_key"] for e in after] == [e["waveform_key"] for e in before]
    assert [e["timestamp"] for e in after] != [e["timestamp"] for e in before]
    new_wave = get(api, url + "events/1/waveform/raw/")
    assert new_wave.status_code == 200
    assert new_wave["X-Source"] == "device"
    assert new_wave.content == sim.unit.waveform_body(1) != old_wave.content
    assert SeismoWaveform.objects.count() == 2


def test_external_erase_detected_at_waveform_read(api, sims):
    """The set_waveform stamp check: a cached index whose header changed flushes."""
    sim = sims(events=2)
    url = register(api, sim)
    get(api, url + "events/")
    sim.erase_and_rerecord()
    wave = get(api, url + "events/0/waveform/raw/")
    assert wave.content == sim.unit.waveform_body(0)
    device = Seismograph.objects.get()
    assert device.events_checked_at is None  # the event list will be re-synced


def test_erase_through_the_api(api, sims, django_user_model):
    sim = sims(events=2)
    url = register(api, sim)
    get(api, url + "events/")
    viewer = token_client(role_user("viewer", "viewer"))
    assert viewer.post(url + "erase/").status_code == 403
    assert api.post(url + "erase/").status_code == 200
    assert sim.unit.event_count == 0
    assert get(api, url + "events/").json()["data"] == []
    assert SeismoEvent.objects.count() == 2  # history stays


# 6 ---------------------------------------------------------------------------------------------


def test_config_write_dirties_info_and_events(api, sims):
    sim = sims(events=1)
    url = register(api, sim)
    info = get(api, url + "info/").json()
    get(api, url + "events/")
    revision = info["data"]["config"]["revision"]
    assert get(api, url + "info/").json()["source"] == "cache"

    bad = api.post(url + "config/", {"sample_rate": 1000}, format="json")
    assert bad.status_code == 400
    assert "sample_rate" in bad.json()
    bad = api.post(url + "config/", {"record_time": 61}, format="json")
    assert bad.status_code == 400
    assert "record_time" in bad.json()
    bad = api.post(url + "config/", {"trigger_level_geo": 50}, format="json")
    assert bad.status_code == 400
    assert "trigger_level_geo" in bad.json()

    written = api.post(url + "config/", {"record_time": 5, "project": "Bridge"}, format="json")
    assert written.status_code == 200, written.content
    assert get(api, url + "events/").json()["stale"] is True
    info = get(api, url + "info/").json()
    assert info["source"] == "device"
    assert info["data"]["config"]["record_time_s"] == 5.0
    assert info["data"]["config"]["project"]["project"] == "Bridge"
    assert info["data"]["config"]["revision"] == revision + 1
    assert sim.unit.config.record_time_s == 5.0


def test_value_the_unit_rejects_is_400_not_a_link_failure(api, sims):
    """Without cached info the API cannot check trigger <= range; the unit can."""
    sim = sims(events=0)
    url = register(api, sim)
    rejected = api.post(url + "config/", {"trigger_level_geo": 20}, format="json")
    assert rejected.status_code == 400
    assert rejected.json()["last_error"]["kind"] == "rejected"
    assert "trigger_level_geo" in rejected.json()["last_error"]["message"]
    device = Seismograph.objects.get()
    assert device.last_error_kind == ""
    assert device.offline is False
    assert sim.unit.config.trigger_level_geo == 0.5


def test_different_writes_in_flight_are_each_applied(api, sims, settings):
    """A write joins only the same write in flight: other values wait for the unit's lock
    and are applied, never answered with the first write's outcome."""
    sim = sims(events=0)
    url = register(api, sim)
    device = Seismograph.objects.get()
    settings.SEISMO_API_WAIT_S = 0
    with seismo_cache.device_lock(device.pk) as owned:
        assert owned
        first = api.post(url + "config/", {"project": "Bridge"}, format="json").json()
        same = api.post(url + "config/", {"project": "Bridge"}, format="json").json()
        other = api.post(url + "config/", {"client": "Acme"}, format="json").json()
    assert first["task_id"] == same["task_id"] != other["task_id"]
    assert wait_task(api, first)["status"] == wait_task(api, other)["status"] == "succeeded"
    project = sim.unit.config.project
    assert (project.project, project.client) == ("Bridge", "Acme")


def test_a_write_not_started_in_time_is_dropped_not_run_late(api, sims, settings):
    """An erase held up by another session past SEISMO_COMMAND_EXPIRES_S is revoked (as a
    message redelivered after a worker crash would be): the unit keeps its events."""
    sim = sims(events=2)
    url = register(api, sim)
    device = Seismograph.objects.get()
    settings.SEISMO_COMMAND_EXPIRES_S = 0.5
    with seismo_cache.device_lock(device.pk) as owned:
        assert owned
        reply = api.post(url + "erase/")
    assert reply.status_code == 503, reply.content
    assert reply.json()["last_error"]["kind"] == "expired"
    assert sim.unit.event_count == 2


# 7 ---------------------------------------------------------------------------------------------


def test_monitor_status_ttl_eviction_and_pending_start(api, sims):
    sim = sims(events=0, time_scale=0.02)  # the 40 s sensor check takes 0.8 s
    url = register(api, sim)
    first = get(api, url + "monitor/").json()
    assert first["source"] == "device"
    assert first["data"]["monitoring"] is False
    assert get(api, url + "monitor/").json()["source"] == "cache"
    # served from the cache until the TTL ends, then read from the unit again
    wait_until(
        lambda: get(api, url + "monitor/").json()["source"] == "device", timeout=15, interval=0.3
    )
    cached_for = timezone.now() - dt.datetime.fromisoformat(first["fetched_at"])
    assert cached_for.total_seconds() >= MONITOR_TTL_S
    sessions = sim.sessions

    assert api.post(url + "monitor/start/").status_code == 200
    status = get(api, url + "monitor/").json()
    assert status["source"] == "device"  # start evicted the cached status
    assert status["data"]["pending"] == "start"
    assert status["data"]["monitoring"] is False

    def confirmed():
        body = get(api, url + "monitor/", force="true").json()["data"]
        return body["monitoring"] and body["pending"] is None

    wait_until(confirmed, timeout=20, interval=0.2)
    assert api.post(url + "monitor/stop/").status_code == 200
    assert get(api, url + "monitor/").json()["data"]["monitoring"] is False
    assert sim.sessions > sessions


# 8, 9 -------------------------------------------------------------------------------------------


def _parallel(api: APIClient, url: str, n: int) -> list[int]:
    results: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            code = api.get(url).status_code
            with lock:
                results.append(code)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_ten_concurrent_cold_requests_one_session(api, sims):
    sim = sims(events=3, time_scale=0.02)
    url = register(api, sim)
    codes = _parallel(api, url + "events/", 10)
    assert len(codes) == 10
    assert set(codes) <= {200, 202}
    wait_until(lambda: Seismograph.objects.get().events_checked_at, timeout=20)
    assert get(api, url + "events/").json()["source"] == "cache"
    assert sim.sessions == 1
    assert sim.connections == 1


def test_forced_refresh_is_single_flight(api, sims):
    sim = sims(events=1, time_scale=0.02)
    url = register(api, sim)
    get(api, url + "info/")
    assert sim.sessions == 1
    codes = _parallel(api, url + "info/?force=true", 2)
    assert set(codes) <= {200, 202}
    assert sim.sessions == 2


def test_two_units_are_served_in_parallel(api, sims, settings):
    slow = sims(events=1, time_scale=0.3)  # a ~6 s download at 30 % of real timing
    fast = sims(events=2)
    slow_url, fast_url = register(api, slow, timeout_s=5.0), register(api, fast)
    get(api, slow_url + "events/")
    settings.SEISMO_API_WAIT_S = 0
    accepted = get(api, slow_url + "events/0/waveform/")
    assert accepted.status_code == 202
    pending = accepted.json()
    assert accepted["Location"] == pending["status_url"]
    progress = wait_until(lambda: api.get(pending["status_url"]).json()["progress"], timeout=20)
    assert 0 < progress["bytes_done"] < progress["bytes_total"] == len(slow.unit.waveform_body(0))
    settings.SEISMO_API_WAIT_S = 8
    other = get(api, fast_url + "events/")
    assert other.status_code == 200
    assert other.json()["source"] == "device"
    assert api.get(pending["status_url"]).json()["status"] == "running"
    assert wait_task(api, pending)["status"] == "succeeded"


def test_dead_refresh_task_is_taken_over_not_waited_on(api, sims):
    """A task killed at its hard time limit never releases its flight marker: the next
    request starts a new refresh instead of joining the dead one until the marker expires."""
    sim = sims(events=1)
    url = register(api, sim)
    device = Seismograph.objects.get()
    dead = uuid.uuid4().hex
    assert seismo_cache.claim_flight(device.pk, "events", dead) == dead
    app.backend.mark_as_failure(dead, TimeLimitExceeded(600))
    reply = get(api, url + "events/")
    assert reply.status_code == 200, reply.content
    assert reply.json()["source"] == "device"
    assert sim.sessions == 1
    assert seismo_cache.flight_task(device.pk, "events") is None


def test_unit_locked_by_another_session_is_busy_not_dialled(api, sims):
    sim = sims(events=1)
    url = register(api, sim)
    device = Seismograph.objects.get()
    with seismo_cache.device_lock(device.pk) as owned:
        assert owned
        busy = get(api, url + "info/")  # the task gives up after SEISMO_LOCK_WAIT_S
    assert busy.status_code == 503, busy.content
    assert busy.json()["last_error"]["kind"] == "busy"
    assert sim.connections == 0
    assert Seismograph.objects.get().last_error_kind == ""  # not a link failure
    assert get(api, url + "info/").json()["source"] == "device"


def test_admin_refresh_action_fills_the_cache(api, sims, admin_client):
    sim = sims(events=2)
    url = register(api, sim)
    device = Seismograph.objects.get()
    action = {"action": "refresh", "_selected_action": [device.pk]}
    assert admin_client.post("/admin/seismographs/seismograph/", action).status_code == 302
    refreshed = Seismograph.objects.filter(
        pk=device.pk, info_fetched_at__isnull=False, events_checked_at__isnull=False
    )
    wait_until(refreshed.exists, timeout=20)
    assert get(api, url + "info/").json()["source"] == "cache"
    assert [e["index"] for e in get(api, url + "events/").json()["data"]] == [0, 1]
    assert sim.sessions == 2


# 10 ----------------------------------------------------------------------------------------------


def test_failures_serve_stale_then_offline_after_three(api, sims):
    sim = sims(events=2)
    url = register(api, sim)
    get(api, url + "info/")
    sim.set_fault(refused=True)
    failed = get(api, url + "info/", force="true").json()
    assert failed["stale"] is True
    assert failed["data"]["serial"] == sim.unit.identity.serial
    assert failed["last_error"]["kind"] == "refused"
    assert failed["offline"] is False

    connections = sim.connections
    negative = get(api, url + "events/")  # nothing cached + negative entry: no dial
    assert negative.status_code == 503
    assert negative.json()["last_error"]["kind"] == "refused"
    assert sim.connections == connections

    get(api, url + "info/", force="true")
    third = get(api, url + "info/", force="true").json()
    assert third["offline"] is True
    assert third["stale"] is True
    assert Seismograph.objects.get().offline is True

    sim.clear_faults()
    back = get(api, url + "info/", force="true").json()
    assert back["source"] == "device"
    assert back["offline"] is False
    assert back["last_error"] is None


def test_refused_and_timeout_reported_differently(api, sims):
    refused, silent = sims(events=1), sims(events=1)
    refused.set_fault(refused=True)
    silent.set_fault(silent=True)
    a = get(api, register(api, refused) + "info/")
    b = get(api, register(api, silent, timeout_s=0.5) + "info/")
    assert (a.status_code, a.json()["last_error"]["kind"]) == (503, "refused")
    assert (b.status_code, b.json()["last_error"]["kind"]) == (504, "timeout")


# 11 ----------------------------------------------------------------------------------------------


def test_drop_mid_download_is_retried_never_half_cached(api, sims):
    sim = sims(events=1)
    url = register(api, sim)
    get(api, url + "events/")
    sim.set_fault(drop_chunk=5)
    sessions = sim.sessions
    raw = settled(api, url + "events/0/waveform/raw/")
    assert raw.status_code == 200
    body = sim.unit.waveform_body(0)
    assert raw.content == body
    row = SeismoWaveform.objects.get()
    assert row.sha256 == hashlib.sha256(body).hexdigest()
    assert row.raw_size == len(body)
    assert row.compressed_size < row.raw_size
    assert sim.sessions - sessions == 2  # the dropped session, then the complete retry


# 12 ----------------------------------------------------------------------------------------------


def test_event_zero_with_key_zero_is_an_event(api, sims):
    sim = sims(events=2, zero_first_key=True)
    url = register(api, sim)
    events = get(api, url + "events/").json()["data"]
    assert events[0]["waveform_key"] == "00000000"
    assert len(events) == 2
    assert get(api, url + "events/0/waveform/").status_code == 200


# serial path ---------------------------------------------------------------------------------


def test_serial_unit_over_pty(api, sims):
    sim = sims(events=1, transport="pty")
    url = register(api, sim)
    info = get(api, url + "info/").json()
    assert info["source"] == "device"
    assert Seismograph.objects.get().serial_number == sim.unit.identity.serial
    assert get(api, url + "events/0/waveform/raw/").content == sim.unit.waveform_body(0)
