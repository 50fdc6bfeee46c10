"""The cable-modem simulator end to end: SNMP trigger → PNM file → TFTP → the real receiver."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.ingester import Item
from devices.links import pnm
from devices.links.pnm import PnmTest
from devices.links.snmp import SnmpClient, client
from devices.links.tftp import DEFAULT_MAX_BYTES, Expectation
from devices.tests.test_links_tftp import Receiver
from simulators import pnm_files
from simulators.modem import Failure, ModemFarm, SimulatedModem
from tests.helpers import ROOT, wait_until

SAMPLES = Path("/work/shared/pnm-samples")
OK, NO_UPLOAD, TRUNCATED, IGNORES_NAME = 0, 1, 2, 3


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    running = Receiver(tmp_path_factory.mktemp("sim") / "spool", max_bytes=DEFAULT_MAX_BYTES)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def farm(receiver: Receiver) -> Iterator[ModemFarm]:
    with ModemFarm(
        4,
        measure_delay_s=0.2,
        distinct_addresses=True,
        tftp_port=receiver.port,
        failures={
            NO_UPLOAD: Failure.NO_UPLOAD,
            TRUNCATED: Failure.TRUNCATED_UPLOAD,
            IGNORES_NAME: Failure.IGNORE_FILE_NAME,
        },
    ) as running:
        yield running


@pytest.fixture(scope="module")
def snmp() -> SnmpClient:
    return client()  # the process-wide one, as a worker uses it


def capture(
    snmp: SnmpClient,
    receiver: Receiver,
    modem: SimulatedModem,
    test: PnmTest,
    channel_id: int,
    peer: str | None = None,
) -> Expectation:
    """What the capture task does for one channel: returns the expectation it registered
    (the upload expected from ``peer``, by default the modem's address)."""
    target = modem.target()
    channels = {c.channel_id: c.if_index for c in pnm.ofdm_channels(snmp, target)}
    name = pnm.stored_file_name(test, modem.mac, channel_id, int(time.time()))
    expectation = Expectation(
        name,
        peer or modem.address,
        mac=pnm.normalize_mac(modem.mac),
        test=test.value,
        expires_at=time.time() + 30,
        context={"channel_id": channel_id},
    )
    receiver.store.expect(expectation)
    pnm.set_bulk_destination(snmp, target, "127.0.0.1")
    pnm.start_capture(snmp, target, test, channels[channel_id], name)
    pnm.wait_sample_ready(snmp, target, test, channels[channel_id], deadline_s=5, poll_s=0.05)
    return expectation


def received(receiver: Receiver, expectation: Expectation) -> Item | None:
    return next((i for i in receiver.items if i.meta["file_name"] == expectation.file_name), None)


def header(data: bytes) -> dict:
    magic, kind, major, minor, captured = pnm_files.COMMON_HEADER.unpack_from(data)
    channel, mac, f0, first, spacing, length = pnm_files.OFDM_HEADER.unpack_from(data, 10)
    return {
        "magic": magic,
        "type": kind,
        "version": (major, minor),
        "captured": captured,
        "channel": channel,
        "mac": mac.hex(),
        "f0": f0,
        "first": first,
        "spacing": spacing,
        "length": length,
    }


@pytest.mark.parametrize(
    ("test", "channel_id"), [(PnmTest.RXMER, 193), (PnmTest.CHANNEL_ESTIMATION, 194)]
)
def test_trigger_to_received_file(
    farm: ModemFarm, receiver: Receiver, snmp: SnmpClient, test: PnmTest, channel_id: int
) -> None:
    modem = farm[OK]
    expectation = capture(snmp, receiver, modem, test, channel_id)

    item = wait_until(
        lambda: next((i for i in receiver.items if i.key == expectation.file_name), None)
    )
    assert item.path is not None
    data = Path(item.path).read_bytes()
    # The farm is shared by the module: wait for this file's record, not for any record.
    upload = wait_until(lambda: next((u for u in modem.uploads if u.file_name == item.key), None))
    assert upload.ok
    assert item.meta["sha256"] == upload.sha256 == hashlib.sha256(data).hexdigest()
    assert item.meta["peer"] == modem.address
    fields = header(data)
    assert fields["magic"] == b"PNN"
    assert fields["type"] == test.files[0].pnn_type
    assert fields["channel"] == channel_id
    assert fields["mac"] == pnm.normalize_mac(modem.mac)
    assert pnm_files.DATA_OFFSET + fields["length"] == len(data)
    bulk_names = {name for _, name, status in modem.bulk_files if status == 4}
    assert expectation.file_name.encode() in bulk_names  # docsPnmBulkFileUploadStatus


def test_modem_ignoring_the_file_name_uploads_the_mib_default(
    farm: ModemFarm, receiver: Receiver, snmp: SnmpClient
) -> None:
    modem = farm[IGNORES_NAME]
    expectation = capture(snmp, receiver, modem, PnmTest.RXMER, 193)

    item = wait_until(
        lambda: next(
            (i for i in receiver.items if i.meta["file_name"] == expectation.file_name), None
        )
    )

    assert item.meta["received_name"].startswith(f"PNMDsMer_{pnm.normalize_mac(modem.mac)}_")
    assert item.key == expectation.file_name  # stored under the name we expected
    assert item.meta["context"] == {"channel_id": 193}


def test_truncated_upload_is_discarded_and_failed(
    farm: ModemFarm, receiver: Receiver, snmp: SnmpClient
) -> None:
    expectation = capture(snmp, receiver, farm[TRUNCATED], PnmTest.RXMER, 193)
    wait_until(lambda: any(e == expectation for e, _ in receiver.store.failures))
    assert not (receiver.spool / expectation.file_name).exists()


def test_upload_that_never_arrives(farm: ModemFarm, receiver: Receiver, snmp: SnmpClient) -> None:
    modem = farm[NO_UPLOAD]
    expectation = capture(snmp, receiver, modem, PnmTest.RXMER, 193)
    time.sleep(0.5)  # give a (wrong) upload time to show up before asserting it did not
    assert receiver.store.match(expectation.file_name, modem.address) == expectation
    assert modem.uploads == []


def test_many_modems_each_answer_on_their_own_address(snmp: SnmpClient) -> None:
    with ModemFarm(20, distinct_addresses=True, port=0) as many:
        addresses = {m.address for m in many}
        assert len(addresses) == 20
        for modem in many:
            rows = snmp.walk(modem.target(), pnm.OFDM_CHANNEL_ID)
            assert len(rows) == 2
        pnm.set_bulk_destination(snmp, many[7].target(), "127.0.0.1", "/seven/")
        assert [m.index for m in many if m.dest_path == b"/seven/"] == [7]


@pytest.fixture(scope="module")
def farm6(receiver: Receiver) -> Iterator[ModemFarm]:
    """Two modems whose management address is ::1; their uploads go to the IPv4 receiver."""
    with ModemFarm(2, host="::1", measure_delay_s=0.2, tftp_port=receiver.port) as running:
        yield running


def test_ipv6_modem_is_triggered_over_ipv6_and_uploads_from_its_ipv4_side(
    farm6: ModemFarm, receiver: Receiver, snmp: SnmpClient
) -> None:
    modem = farm6[0]
    assert modem.address == "::1"
    assert modem.upload_address == "127.0.0.1"
    expectation = capture(snmp, receiver, modem, PnmTest.RXMER, 193, peer=modem.upload_address)

    item = wait_until(lambda: received(receiver, expectation))
    assert item.meta["peer"] == "127.0.0.1"
    (upload,) = wait_until(lambda: modem.uploads)
    assert upload.ok
    assert item.path is not None
    assert upload.sha256 == hashlib.sha256(Path(item.path).read_bytes()).hexdigest()


def test_upload_expected_from_the_ipv6_address_is_refused(
    farm6: ModemFarm, receiver: Receiver, snmp: SnmpClient
) -> None:
    """Why the API refuses IPv6-only modems: the peer of their upload is not that address."""
    modem = farm6[1]
    expectation = capture(snmp, receiver, modem, PnmTest.RXMER, 193, peer=modem.address)

    (upload,) = wait_until(lambda: modem.uploads)
    assert not upload.ok
    assert "errorcode = 2" in upload.error  # TFTP access violation: refused by the receiver
    assert received(receiver, expectation) is None


def test_farm_listens_on_ipv6_loopback_only() -> None:
    with pytest.raises(ValueError, match="::1"):
        ModemFarm(1, host="2001:db8::1")
    with pytest.raises(ValueError, match="::1"):
        ModemFarm(2, host="::1", distinct_addresses=True)


# --- the file writers ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "sample",
    [
        "rxmer.bin",
        "channel_estimation.bin",
        "ds_ofdm_rxmer_per_subcar_aabbccddeeff_193_1764820677.bin",
    ],
)
def test_header_layout_reads_the_real_samples(sample: str) -> None:
    data = (SAMPLES / sample).read_bytes()
    fields = header(data)
    assert fields["magic"] == b"PNN"
    assert fields["spacing"] in (25, 50)
    assert pnm_files.DATA_OFFSET + fields["length"] == len(data)


def test_rxmer_file_is_realistic_and_deterministic() -> None:
    options = {"channel_id": 193, "mac": "aa:bb:cc:dd:ee:ff", "capture_time": 1764820677}
    data = pnm_files.rxmer_file(seed=5, **options)
    assert data == pnm_files.rxmer_file(seed=5, **options)
    assert data != pnm_files.rxmer_file(seed=6, **options)
    fields = header(data)
    assert (fields["type"], fields["version"], fields["captured"]) == (4, (1, 0), 1764820677)
    values = np.frombuffer(data[pnm_files.DATA_OFFSET :], dtype=np.uint8)
    excluded = values == pnm_files.RXMER_EXCLUDED
    assert 1 <= excluded.sum() <= 10
    measured = values[~excluded] / 4
    assert 38 <= np.median(measured) <= 42
    assert 0.3 <= measured.std() <= 3


def test_channel_estimation_file_is_s2_13_iq() -> None:
    data = pnm_files.channel_estimation_file(
        channel_id=194, mac="aabbccddeeff", capture_time=1, subcarriers=1000, seed=1
    )
    fields = header(data)
    assert fields["type"] == 2
    assert fields["length"] == 4 * 1000
    pairs = np.frombuffer(data[pnm_files.DATA_OFFSET :], dtype=">i2").astype(float) / 8192
    magnitude = np.hypot(pairs[0::2], pairs[1::2])
    assert 0.7 <= magnitude.mean() <= 1.1


# --- the management command ----------------------------------------------------------------
def test_simulate_modems_command_runs_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "simulate_modems", "--count", "2", "--delay", "0.1"],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None  # piped
        lines = [proc.stdout.readline() for _ in range(2)]
        assert all(line.startswith(f"modem {i} 127.0.0.1:") for i, line in enumerate(lines))
        assert "private" not in "".join(lines)  # no community in the output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
