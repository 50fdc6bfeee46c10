"""The PNM trigger sequence against simulated modems over real SNMP, plus the naming rules."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator

import pytest

from devices.links import pnm
from devices.links.pnm import (
    CaptureTimeout,
    CtlStatus,
    MeasStatus,
    ModemBusy,
    OfdmChannel,
    PnmTest,
)
from devices.links.snmp import SnmpClient, SnmpRejected, SnmpTimeout, client
from simulators.modem import Failure, ModemFarm, SimulatedModem

READY, STALE, SILENT, SLOW = 0, 1, 2, 3
DELAY_S = 0.4


@pytest.fixture(scope="module")
def farm() -> Iterator[ModemFarm]:
    with ModemFarm(
        4,
        measure_delay_s=DELAY_S,
        failures={STALE: Failure.STALE_SAMPLE_READY, SILENT: Failure.TIMEOUT},
    ) as running:
        running[SLOW].measure_delay_s = 30.0
        yield running


@pytest.fixture(scope="module")
def snmp() -> SnmpClient:
    return client()  # the process-wide one, as a worker uses it


def wait_idle(snmp: SnmpClient, modem: SimulatedModem) -> None:
    deadline = time.monotonic() + 5
    while pnm.ctl_status(snmp, modem.target()) is not CtlStatus.READY:
        assert time.monotonic() < deadline, "modem stayed busy"
        time.sleep(0.05)


# --- names and sysDescr (no network) ---------------------------------------------------------
def test_parse_sys_descr_reads_every_field() -> None:
    text = "CM <<HW_REV: 1.0; VENDOR: LANCity; BOOTR: NONE; SW_REV: 1.0.0; MODEL: LCPET-3>>"
    assert pnm.parse_sys_descr(text) == {
        "HW_REV": "1.0",
        "VENDOR": "LANCity",
        "BOOTR": "NONE",
        "SW_REV": "1.0.0",
        "MODEL": "LCPET-3",
    }


def test_parse_sys_descr_tolerates_other_formats() -> None:
    assert pnm.parse_sys_descr("<<VENDOR: Acme; junk>>")["VENDOR"] == "Acme"
    assert pnm.parse_sys_descr("Linux cm 4.9")["MODEL"] == ""


def test_stored_name_is_pypnm_s() -> None:
    # the real sample in shared/pnm-samples carries exactly this name
    name = pnm.stored_file_name(PnmTest.RXMER, "aa:bb:cc:dd:ee:ff", 193, 1764820677)
    assert name == "ds_ofdm_rxmer_per_subcar_aabbccddeeff_193_1764820677.bin"
    chan_est = pnm.stored_file_name(PnmTest.CHANNEL_ESTIMATION, "AABBCCDDEEFF", 34, 1)
    assert chan_est == "ds_ofdm_chan_est_coef_aabbccddeeff_34_1.bin"


def test_default_names_follow_the_mib_and_parse_back() -> None:
    assert pnm.default_file_name(PnmTest.RXMER, "AA-BB-CC-DD-EE-FF", 7) == "PNMDsMer_aabbccddeeff_7"
    name = pnm.default_file_name(PnmTest.CHANNEL_ESTIMATION, "aabb.ccdd.eeff", 9)
    assert name == "PNMChEstCoef_aabbccddeeff_9"
    assert pnm.parse_default_file_name(name) == (PnmTest.CHANNEL_ESTIMATION, "aabbccddeeff", 9)
    assert pnm.parse_default_file_name("PNMDsMer_AABBCCDDEEFF_12") == (
        PnmTest.RXMER,
        "aabbccddeeff",
        12,
    )
    assert pnm.parse_default_file_name("ds_ofdm_rxmer_per_subcar_aabbccddeeff_1_2.bin") is None
    assert pnm.parse_default_file_name("PNMOther_aabbccddeeff_12") is None


@pytest.mark.parametrize("mac", ["aa:bb:cc:dd:ee", "zz:bb:cc:dd:ee:ff", "aabbccddeeff00", ""])
def test_malformed_macs_are_refused(mac: str) -> None:
    with pytest.raises(ValueError, match="MAC"):
        pnm.normalize_mac(mac)


def test_test_oids_are_the_mib_s() -> None:
    base = "1.3.6.1.4.1.4491.2.1.27.1.2"
    assert PnmTest.RXMER.enable_oid(3) == f"{base}.5.1.1.3"
    assert PnmTest.RXMER.meas_status_oid(3) == f"{base}.5.1.7.3"
    assert PnmTest.RXMER.file_name_oid(3) == f"{base}.5.1.8.3"
    assert PnmTest.CHANNEL_ESTIMATION.enable_oid(4) == f"{base}.3.1.1.4"
    assert PnmTest.CHANNEL_ESTIMATION.meas_status_oid(4) == f"{base}.3.1.7.4"
    assert PnmTest.CHANNEL_ESTIMATION.file_name_oid(4) == f"{base}.3.1.8.4"


# --- the sequence against a simulated modem --------------------------------------------------
def test_system_description_and_channels(farm: ModemFarm, snmp: SnmpClient) -> None:
    target = farm[READY].target()
    assert pnm.read_system_description(snmp, target)["MODEL"] == "SIM-CM31"
    assert pnm.ofdm_channels(snmp, target) == [OfdmChannel(3, 193), OfdmChannel(4, 194)]


def test_bulk_destination_is_set_as_raw_bytes(farm: ModemFarm, snmp: SnmpClient) -> None:
    modem = farm[READY]
    pnm.set_bulk_destination(snmp, modem.target(), "127.0.0.9", "/pnm/")
    assert modem.dest_type == 1
    assert modem.dest_ip == bytes([127, 0, 0, 9])
    assert modem.dest_path == b"/pnm/"
    assert modem.upload_control == pnm.UPLOAD_AUTO
    snmp.set(modem.target(), (pnm.BULK_UPLOAD_CONTROL, 2))  # nothing listens there: no uploads


def test_bulk_destination_changes_address_family_in_one_set(
    farm: ModemFarm, snmp: SnmpClient
) -> None:
    """RFC 4001: the modem refuses a type that disagrees with the address it holds, so a
    switch between IPv4 and IPv6 works only as one SET of type and address together."""
    modem, target = farm[READY], farm[READY].target()
    with pytest.raises(SnmpRejected) as lone_type:
        snmp.set(target, (pnm.BULK_DEST_IP_TYPE, 2))
    assert lone_type.value.status == "inconsistentValue"
    assert modem.dest_type == 1

    pnm.set_bulk_destination(snmp, target, "::1", "/pnm/")
    assert (modem.dest_type, modem.dest_ip) == (2, ipaddress.ip_address("::1").packed)
    pnm.set_bulk_destination(snmp, target, "127.0.0.9")
    assert (modem.dest_type, modem.dest_ip, modem.dest_path) == (1, bytes([127, 0, 0, 9]), b"")
    snmp.set(target, (pnm.BULK_UPLOAD_CONTROL, 2))  # nothing listens there: no uploads


def test_capture_runs_and_file_enable_resets(farm: ModemFarm, snmp: SnmpClient) -> None:
    modem, target = farm[READY], farm[READY].target()
    wait_idle(snmp, modem)
    pnm.start_capture(snmp, target, PnmTest.RXMER, 3, "rxmer_3.bin")

    assert snmp.get(target, PnmTest.RXMER.file_name_oid(3)) == [b"rxmer_3.bin"]
    assert pnm.ctl_status(snmp, target) is CtlStatus.TEST_IN_PROGRESS
    status = pnm.wait_sample_ready(snmp, target, PnmTest.RXMER, 3, deadline_s=5, poll_s=0.05)

    assert status is MeasStatus.SAMPLE_READY
    assert snmp.get(target, PnmTest.RXMER.enable_oid(3)) == [pnm.FALSE]
    assert pnm.ctl_status(snmp, target) is CtlStatus.READY


def test_channel_estimation_capture(farm: ModemFarm, snmp: SnmpClient) -> None:
    modem, target = farm[READY], farm[READY].target()
    wait_idle(snmp, modem)
    test = PnmTest.CHANNEL_ESTIMATION
    pnm.start_capture(snmp, target, test, 4, "chan_est_4.bin")
    assert pnm.wait_sample_ready(snmp, target, test, 4, deadline_s=5, poll_s=0.05)
    assert snmp.get(target, test.enable_oid(4)) == [pnm.FALSE]


def test_busy_modem_raises_modem_busy(farm: ModemFarm, snmp: SnmpClient) -> None:
    modem, target = farm[READY], farm[READY].target()
    wait_idle(snmp, modem)
    pnm.start_capture(snmp, target, PnmTest.RXMER, 3, "first.bin")

    with pytest.raises(ModemBusy, match="TEST_IN_PROGRESS"):
        pnm.start_capture(snmp, target, PnmTest.RXMER, 4, "second.bin")
    with pytest.raises(ModemBusy, match="inconsistentValue"):  # the modem's own refusal
        pnm.set_bulk_destination(snmp, target, "127.0.0.9")
    with pytest.raises(SnmpRejected) as rejected:
        snmp.set(target, (PnmTest.RXMER.enable_oid(4), pnm.TRUE))
    assert rejected.value.status == "inconsistentValue"
    wait_idle(snmp, modem)


def test_stale_sample_ready_is_ignored(farm: ModemFarm, snmp: SnmpClient) -> None:
    modem, target = farm[STALE], farm[STALE].target()
    assert snmp.get(target, PnmTest.RXMER.meas_status_oid(3)) == [MeasStatus.SAMPLE_READY]
    started = time.monotonic()
    pnm.start_capture(snmp, target, PnmTest.RXMER, 3, "stale.bin")
    assert snmp.get(target, PnmTest.RXMER.meas_status_oid(3)) == [MeasStatus.SAMPLE_READY]

    pnm.wait_sample_ready(snmp, target, PnmTest.RXMER, 3, deadline_s=5, poll_s=0.05)

    assert time.monotonic() - started >= DELAY_S * 0.9  # the real end, not the stale status
    assert pnm.ctl_status(snmp, target) is CtlStatus.READY
    wait_idle(snmp, modem)


def test_file_enable_reset_ends_the_wait_when_busy_was_missed(
    farm: ModemFarm, snmp: SnmpClient
) -> None:
    """Polling slower than the measurement never sees busy; the CM's FileEnable reset says
    the test ended, so the wait does not sit out the stale grace."""
    modem, target = farm[STALE], farm[STALE].target()
    wait_idle(snmp, modem)
    pnm.start_capture(snmp, target, PnmTest.RXMER, 3, "missed_busy.bin")
    started = time.monotonic()
    pnm.wait_sample_ready(
        snmp, target, PnmTest.RXMER, 3, deadline_s=5, poll_s=DELAY_S * 2, stale_grace_s=30
    )
    assert DELAY_S <= time.monotonic() - started < DELAY_S * 2 + 1
    assert pnm.ctl_status(snmp, target) is CtlStatus.READY


def test_stale_guard_gives_up_after_its_grace(farm: ModemFarm, snmp: SnmpClient) -> None:
    """Without the guard (grace 0) the stale status would be taken at once: the guard matters."""
    modem, target = farm[STALE], farm[STALE].target()
    wait_idle(snmp, modem)
    pnm.start_capture(snmp, target, PnmTest.RXMER, 4, "stale2.bin")
    started = time.monotonic()
    pnm.wait_sample_ready(
        snmp, target, PnmTest.RXMER, 4, deadline_s=5, poll_s=0.05, stale_grace_s=0
    )
    assert time.monotonic() - started < DELAY_S / 2
    assert pnm.ctl_status(snmp, target) is CtlStatus.TEST_IN_PROGRESS
    wait_idle(snmp, modem)


def test_deadline_is_honoured(farm: ModemFarm, snmp: SnmpClient) -> None:
    target = farm[SLOW].target()
    pnm.start_capture(snmp, target, PnmTest.RXMER, 3, "slow.bin")
    started = time.monotonic()
    with pytest.raises(CaptureTimeout, match="BUSY"):
        pnm.wait_sample_ready(snmp, target, PnmTest.RXMER, 3, deadline_s=0.6, poll_s=0.1)
    assert 0.5 <= time.monotonic() - started <= 1.5


def test_terminal_status_fails_the_capture(farm: ModemFarm, snmp: SnmpClient) -> None:
    modem, target = farm[READY], farm[READY].target()
    wait_idle(snmp, modem)
    pnm.start_capture(snmp, target, PnmTest.RXMER, 4, "broken.bin")
    farm.call(setattr, modem.tests[(PnmTest.RXMER, 4)], "status", MeasStatus.SAMPLE_TRUNCATED)
    with pytest.raises(pnm.CaptureFailed) as failed:
        pnm.wait_sample_ready(snmp, target, PnmTest.RXMER, 4, deadline_s=5, poll_s=0.05)
    assert failed.value.status is MeasStatus.SAMPLE_TRUNCATED
    wait_idle(snmp, modem)


def test_silent_modem_is_a_timeout(farm: ModemFarm, snmp: SnmpClient) -> None:
    target = farm[SILENT].target(timeout_s=0.2, retries=0)
    with pytest.raises(SnmpTimeout):
        pnm.read_system_description(snmp, target)
