"""MiniMateClient against the simulated unit, over TCP (socket://) and over a pty (the
serial path), for every operation and every fault."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from seismographs.protocol import (
    ChecksumError,
    CommandRejected,
    DeviceConfig,
    LinkDropped,
    LinkRefused,
    LinkTimeout,
    MiniMateClient,
    NoSuchEvent,
    ProjectInfo,
)
from seismographs.protocol.records import compute_peaks
from simulators.seismograph import CHUNK_BYTES, FIRST_KEY, LinkTiming, SeismographSimulator
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(60)

FAST = {"timeout_s": 1.0, "chunk_timeout_s": 1.0, "idle_gap_s": 0.05}


@pytest.fixture(params=["tcp", "pty"])
def make_sim(request):
    """Start simulators on the parametrized link; all are stopped after the test."""
    started = []

    def make(**options) -> SeismographSimulator:
        options.setdefault("time_scale", 0.0)
        sim = SeismographSimulator(transport=request.param, **options).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def client(sim: SeismographSimulator, **overrides) -> MiniMateClient:
    return MiniMateClient.from_conn_key(sim.conn_key, **{**FAST, **overrides})


def test_identify_and_config_round_trip(make_sim):
    sim = make_sim(serial="BA12345")
    with client(sim) as unit:
        identity = unit.identify()
        before = unit.read_config()
        wanted = DeviceConfig(
            sample_rate=2048, record_time_s=5.0, project=ProjectInfo("Dam", "Water Co", "Ann")
        )
        after = unit.write_config(wanted)
    assert (identity.serial, identity.firmware) == ("BA12345", "S338.17")
    assert after.revision == before.revision + 1
    assert (after.sample_rate, after.record_time_s, after.project) == (2048, 5.0, wanted.project)
    assert sim.unit.config == after
    assert sim.sessions == 1


def test_invalid_config_is_rejected_naming_the_field(make_sim):
    sim = make_sim()
    with client(sim) as unit, pytest.raises(CommandRejected, match="sample_rate") as info:
        unit.write_config(DeviceConfig(sample_rate=1000))
    assert not info.value.transient
    assert sim.unit.config.revision == 0


def test_count_and_keys_with_event_zero_at_key_zero(make_sim):
    sim = make_sim(events=3, zero_first_key=True)
    with client(sim) as unit:
        assert unit.count_events() == 3
        keys = unit.list_event_keys()
    assert [k.waveform_key for k in keys] == [h.waveform_key for h in sim.unit.events()]
    assert keys[0].waveform_key == "00000000"


def test_empty_unit_counts_zero(make_sim):
    with client(make_sim()) as unit:
        assert unit.count_events() == 0
        assert unit.read_event_headers() == []
        with pytest.raises(NoSuchEvent):
            unit.read_event_header(0)


def test_headers_match_the_unit_and_keep_project_strings_from_record_time(make_sim):
    sim = make_sim(events=2, config=DeviceConfig(project=ProjectInfo("Old site")))
    sim.unit.change_config(project=ProjectInfo("New site"))
    sim.record_event()
    with client(sim) as unit:
        headers = unit.read_event_headers()
    assert headers == sim.unit.events()
    assert [h.project.project for h in headers] == ["Old site", "Old site", "New site"]
    assert headers[0].waveform_key == f"{FIRST_KEY:08X}"
    assert headers[0].timestamp < headers[1].timestamp < headers[2].timestamp


def test_only_new_indices_are_fetched(make_sim):
    sim = make_sim(events=2)
    with client(sim) as unit:
        unit.read_event_headers()
        sim.record_events(2)
        before = sim.command_counts["0C"]
        new = unit.read_event_headers(start=2)
    assert [h.index for h in new] == [2, 3]
    assert sim.command_counts["0C"] - before == 4  # probe + fetch for each of 2 events


def test_waveform_download_is_complete_and_consistent_with_its_header(make_sim):
    sim = make_sim(events=2)
    seen = []
    with client(sim) as unit:
        header = unit.read_event_header(1)
        waveform = unit.read_waveform(1, progress=lambda done, total: seen.append((done, total)))
    body = sim.unit.waveform_body(1)
    assert waveform.raw == body
    assert waveform.chunks == -(-len(body) // CHUNK_BYTES)
    assert seen[-1] == (len(body), len(body))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert (waveform.waveform_key, waveform.timestamp) == (header.waveform_key, header.timestamp)
    peaks, pvs, _ = compute_peaks(waveform.counts(), 1024, 0.25, 10.0)
    assert peaks == header.peaks
    assert pvs == pytest.approx(header.peak_vector_sum, rel=1e-6)
    assert waveform.physical()["Tran"].max() <= 10.0


def test_monitor_start_pending_then_monitoring_then_stop(make_sim):
    sim = make_sim(time_scale=0.005)  # 40 s sensor check -> 0.2 s
    with client(sim) as unit:
        idle = unit.read_monitor_status()
        started = unit.start_monitoring()
        confirmed = wait_until(
            lambda: s if (s := unit.read_monitor_status()).monitoring else None, 5
        )
        stopped = unit.stop_monitoring()
    assert (idle.monitoring, idle.starting) == (False, False)
    assert (started.monitoring, started.starting) == (False, True)
    assert (confirmed.memory_total, confirmed.battery_v) == (983_026, pytest.approx(6.79))
    assert not stopped.monitoring
    assert abs((confirmed.clock - dt.datetime.now(dt.UTC)).total_seconds()) < 5


def test_erase_restarts_keys_so_old_keys_come_back(make_sim):
    sim = make_sim(events=3)
    with client(sim) as unit:
        old = unit.read_event_headers()
        first, last = unit.storage_range()
        unit.erase_all()
        assert unit.count_events() == 0
        sim.record_event()
        new = unit.read_event_header(0)
    assert (first, last) == (old[0].waveform_key, old[-1].waveform_key)
    assert new.waveform_key == old[0].waveform_key == f"{FIRST_KEY:08X}"
    assert new.timestamp > old[-1].timestamp
    assert sim.unit.memory_free == sim.unit.memory_total - (new.waveform_bytes + 1024)


def test_external_erase_and_rerecord_same_count_new_timestamps(make_sim):
    sim = make_sim(events=3)
    with client(sim) as unit:
        before = unit.read_event_headers()
    sim.erase_and_rerecord()
    with client(sim) as unit:
        after = unit.read_event_headers()
    assert [h.waveform_key for h in after] == [h.waveform_key for h in before]
    assert all(a.timestamp > b.timestamp for a, b in zip(after, before, strict=True))


# -- faults ------------------------------------------------------------------------------


def test_refused_and_timeout_are_reported_differently(make_sim):
    refused = make_sim()
    refused.set_fault(refused=True)
    with pytest.raises(LinkRefused) as info:
        client(refused).open()
    assert info.value.kind == "refused"

    silent = make_sim()
    silent.set_fault(silent=True)
    started = time.monotonic()
    with pytest.raises(LinkTimeout) as timed_out:
        client(silent, timeout_s=0.3).open()
    assert timed_out.value.kind == "timeout"
    assert time.monotonic() - started >= 0.3

    refused.clear_faults()
    with client(refused) as unit:
        assert unit.identify().serial == "BE18189"


def test_one_session_at_a_time(make_sim):
    sim = make_sim()
    with client(sim) as first:
        with pytest.raises(LinkRefused):
            client(sim).open()
        assert first.count_events() == 0
    assert sim.sessions == 1


def test_busy_drop_first_policy_drops_the_old_session():
    sim = SeismographSimulator(transport="tcp", time_scale=0.0, busy="drop_first").start()
    try:
        first = client(sim)
        first.open()
        with client(sim) as second:
            assert second.count_events() == 0
        with pytest.raises(LinkDropped):
            first.count_events()
        first.close()
    finally:
        sim.stop()


def test_wedged_unit_times_out_until_reset(make_sim):
    sim = make_sim(time_scale=0.05)  # redials every 1.5 s: longer than the deadline
    sim.set_fault(wedged=True)
    with pytest.raises(LinkTimeout):
        client(sim, timeout_s=0.3).open()
    sim.clear_faults()
    with client(sim) as unit:
        assert unit.count_events() == 0


def test_checksum_error_on_frame_n_then_a_retry_succeeds(make_sim):
    sim = make_sim(events=1)
    sim.set_fault(checksum_frame=3)  # POLL, 15 probe, then the 15 fetch is corrupted
    with client(sim) as unit, pytest.raises(ChecksumError) as info:
        unit.identify()
    assert info.value.transient
    with client(sim) as unit:
        assert unit.identify().serial == "BE18189"


def test_drop_at_chunk_n_returns_nothing_and_a_retry_is_complete(make_sim):
    sim = make_sim(events=1)
    sim.set_fault(drop_chunk=5)
    progress = []
    with client(sim) as unit, pytest.raises(LinkDropped) as info:
        unit.read_waveform(0, progress=lambda done, total: progress.append(done))
    assert info.value.transient
    assert progress[-1] == 5 * CHUNK_BYTES  # chunks 0-4 arrived, then the link broke
    with client(sim) as unit:
        assert unit.read_waveform(0).raw == sim.unit.waveform_body(0)


def test_stream_that_ends_short_is_not_a_waveform(make_sim):
    sim = make_sim(events=1)
    sim.set_fault(end_early_chunk=3)
    with client(sim) as unit, pytest.raises(LinkDropped, match="ended at"):
        unit.read_waveform(0)


def test_checksum_error_inside_the_stream(make_sim):
    sim = make_sim(events=1)
    sim.set_fault(checksum_frame=8)  # POLL, 1E, 0A x2, 0C x2, chunk 0, then chunk 1
    with client(sim) as unit, pytest.raises(ChecksumError, match="A5"):
        unit.read_waveform(0)


def test_banner_and_line_noise_are_skipped(make_sim):
    sim = make_sim(events=1)
    sim.unit.reboot()
    sim.set_fault(garbage=25)
    with client(sim) as unit:
        assert unit.count_events() == 1
        assert unit.read_waveform(0).raw == sim.unit.waveform_body(0)


def test_link_timing_scales(make_sim):
    timing = LinkTiming(connect_s=10.0, command_s=1.0)
    sim = make_sim(events=1, time_scale=0.01, timing=timing)
    started = time.monotonic()
    with client(sim) as unit:
        assert unit.count_events() == 1  # POLL (11 s) + 1E + 1F (1 s each), scaled
    assert time.monotonic() - started >= 0.13
