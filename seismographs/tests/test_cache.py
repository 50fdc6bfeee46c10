"""The cache's building blocks, in-process against a simulated unit (no worker).

Session functions of ``seismographs.services`` run here directly, as a worker would run them;
the live layer is the real Redis of the test settings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from seismographs import cache as seismo_cache
from seismographs import reads as seismo_reads
from seismographs import services, tasks
from seismographs.models import SeismoEvent, Seismograph, SeismoWaveform
from seismographs.plot import keep_indices, waveform_json
from seismographs.protocol.errors import LinkDropped, LinkRefused
from simulators.seismograph import SeismographSimulator

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim() -> Iterator[SeismographSimulator]:
    with SeismographSimulator(events=3, time_scale=0.0, serial="BE20001") as unit:
        yield unit


@pytest.fixture
def device(sim: SeismographSimulator) -> Seismograph:
    device = Seismograph.objects.create(conn_key=sim.conn_key, link_timeout_s=1, idle_gap_s=0.05)
    seismo_cache.clear_device(device.pk)
    return device


def test_partial_download_leaves_nothing_cached(sim, device):
    services.sync_events(device.pk, time.time())
    sim.set_fault(drop_chunk=4)
    with pytest.raises(LinkDropped):
        services.fetch_waveform(device.pk, 0, force=False, progress=lambda done, total: None)
    assert not SeismoWaveform.objects.exists()
    seen: list[tuple[int, int]] = []
    assert services.fetch_waveform(device.pk, 0, False, lambda d, t: seen.append((d, t))) is True
    row = SeismoWaveform.objects.get()
    assert services.waveform_raw(row) == sim.unit.waveform_body(0)
    assert bytes(row.data)[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic, not JSON text
    assert seen[-1][0] == seen[-1][1] == row.raw_size


def test_lock_held_elsewhere_means_busy_and_no_dial(sim, device):
    with seismo_cache.device_lock(device.pk) as owned:
        assert owned
        with pytest.raises(services.DeviceBusy):
            services.refresh_info(device.pk, time.time())
    assert sim.sessions == 0
    assert services.refresh_info(device.pk, time.time()) is True
    assert sim.sessions == 1


def test_answered_request_is_not_dialled_again(sim, device):
    requested = time.time()
    assert services.sync_events(device.pk, requested) is True
    assert services.sync_events(device.pk, requested) is False  # a joined duplicate
    assert sim.sessions == 1


def test_serial_learned_on_first_contact(sim, device):
    services.refresh_monitor(device.pk, time.time())
    device.refresh_from_db()
    assert device.serial_number == "BE20001"
    monitor = seismo_cache.get_monitor(device.pk)
    assert monitor is not None
    assert monitor["data"]["battery_v"] == pytest.approx(6.8, abs=0.2)


def test_failure_counter_marks_offline_at_three(device, settings):
    settings.SEISMO_OFFLINE_AFTER = 3
    for expected_offline in (False, False, True):
        services.note_failure(device.pk, LinkRefused("connection refused"))
        device.refresh_from_db()
        assert device.offline is expected_offline
    assert device.last_error_kind == "refused"
    entry = seismo_cache.negative_entry(device.pk)
    assert entry is not None
    assert entry["failures"] == 3


def test_flight_is_claimed_once(device):
    assert seismo_cache.claim_flight(device.pk, "events", "a") == "a"
    assert seismo_cache.claim_flight(device.pk, "events", "b") == "a"
    seismo_cache.release_flight(device.pk, "events", "b")  # not the owner: no effect
    assert seismo_cache.flight_task(device.pk, "events") == "a"
    seismo_cache.release_flight(device.pk, "events", "a")
    assert seismo_cache.flight_task(device.pk, "events") is None


def test_a_flight_whose_task_is_queued_or_running_is_joined(device):
    """Its task has no result yet (PENDING): joined, no second task is sent."""
    seismo_cache.claim_flight(device.pk, "events", "queued-task")
    assert seismo_reads.dispatch(device.pk, "events", tasks.sync_events) == "queued-task"
    assert seismo_cache.flight_task(device.pk, "events") == "queued-task"


def test_erase_keeps_history_and_empties_index(sim, device):
    services.sync_events(device.pk, time.time())
    services.erase(device.pk)
    device.refresh_from_db()
    assert device.event_count == 0
    assert SeismoEvent.objects.filter(device=device).count() == 3
    assert not SeismoEvent.objects.filter(device_index__isnull=False).exists()
    assert sim.unit.event_count == 0


def test_clear_cache_counts_per_layer(sim, device):
    services.refresh_info(device.pk, time.time())
    services.sync_events(device.pk, time.time())
    services.fetch_waveform(device.pk, 2, False, lambda d, t: None)
    services.refresh_monitor(device.pk, time.time())
    device.refresh_from_db()
    cleared = services.clear_cache(device)
    assert cleared == {"device_info": 1, "events": 3, "waveforms": 1, "monitor_status": 1}
    assert not SeismoEvent.objects.exists()
    assert seismo_cache.get_monitor(device.pk) is None


def test_waveform_decimation_keeps_every_peak_and_both_ends():
    rng = np.random.default_rng(7)
    signal = rng.normal(size=10_000)
    signal[1234], signal[8765] = 50.0, -60.0
    keep = keep_indices(len(signal), 200, [signal])
    assert len(keep) <= 200
    assert {1234, 8765} <= set(keep.tolist())
    assert list(keep) == sorted(keep)
    assert {0, len(signal) - 1} <= set(keep.tolist())


def test_waveform_json_units_axis_and_peaks():
    counts = np.zeros((2048, 4), dtype=">i2")
    counts[700, 1] = 32767  # Vert full scale
    counts[900, 3] = -16384
    plot = waveform_json(counts.tobytes(), 1024, 0.25, 10.0, max_points=64)
    assert plot["npts_raw"] == 2048
    assert plot["npts_display"] <= 64
    assert plot["time_s"][0] == -0.25
    vert = plot["channels"][1]
    assert (vert["name"], vert["units"]) == ("Vert", "in/s")
    assert vert["peak"] == pytest.approx(10.0)
    assert max(vert["data"]) == pytest.approx(10.0)
    assert vert["peak_time_s"] == pytest.approx(700 / 1024 - 0.25)
    assert plot["channels"][3]["units"] == "psi"
