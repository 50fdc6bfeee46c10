"""Every PNM test of the catalogue over real SNMP against the simulated modem, its uploads
received by the real TFTP receiver and checked byte by byte.

OIDs are typed out in full (see test_pnm_catalogue.py for their MIB sources); file fields
are read with ``struct`` at the offsets of shared/reference/docsis-pnm.md §3, and the
parser (``captures.pnm``) is checked against them.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
)
from pysnmp.proto.rfc1902 import Gauge32, Integer32, OctetString

from captures.pnm import parse, parse_snmp_spectrum
from core.ingester import Item
from devices.links import pnm
from devices.links.pnm import CaptureFailed, Channel, CtlStatus, MeasStatus, PnmTest, Scope
from devices.links.snmp import (
    SnmpClient,
    SnmpError,
    SnmpRejected,
    SnmpTarget,
    client,
    oid_suffix,
)
from devices.links.tftp import DEFAULT_MAX_BYTES
from devices.tests.test_links_tftp import Receiver
from simulators.modem import Failure, ModemFarm, SimulatedModem
from tests.helpers import wait_until

CAPTURE, FAILING, RAW, IGNORES_NAME = 0, 1, 2, 3
PNM_CM = "1.3.6.1.4.1.4491.2.1.27.1.2"  # docsPnmCmObjects
SPECTRUM = "1.3.6.1.4.1.4491.2.1.20.1.34"  # docsIf3CmSpectrumAnalysisCtrlCmd
BULK_FILE_NAME = "1.3.6.1.4.1.4491.2.1.27.1.1.2.1.2"  # docsPnmBulkFileName
IF_TYPE = "1.3.6.1.2.1.2.2.1.3"
_names = itertools.count()

# The tests whose CM uploads files (the SNMP-only spectrum is walked instead).
UPLOADED = [test for test in PnmTest if not test.spec.walked]


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    running = Receiver(tmp_path_factory.mktemp("catalogue") / "spool", max_bytes=DEFAULT_MAX_BYTES)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def farm(receiver: Receiver) -> Iterator[ModemFarm]:
    with ModemFarm(
        4,
        measure_delay_s=0.05,
        tftp_port=receiver.port,
        failures={IGNORES_NAME: Failure.IGNORE_FILE_NAME},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def snmp() -> SnmpClient:
    return client()


def wait_ready(snmp: SnmpClient, target: SnmpTarget) -> None:
    wait_until(lambda: pnm.ctl_status(snmp, target) is CtlStatus.READY, timeout=5)


def smi_get(target: SnmpTarget, *oids: str) -> list[tuple[str, object]]:
    """GET ``oids`` with a bare pysnmp engine, keeping what SnmpClient turns into plain Python:
    each value's SMI type, from its BER tag (Gauge32 and Unsigned32 share one)."""

    async def run() -> list[tuple[str, object]]:
        engine = SnmpEngine()
        try:
            transport = await UdpTransportTarget.create(
                (target.host, target.port), timeout=2, retries=1
            )
            indication, status, _, binds = await get_cmd(
                engine,
                CommunityData(target.community),
                transport,
                ContextData(),
                *[ObjectType(ObjectIdentity(oid)) for oid in oids],
                lookupMib=False,
            )
        finally:
            engine.close_dispatcher()
        assert not indication, indication
        assert not int(status), status
        return [(_smi_name(value), value) for _, value in binds]

    return asyncio.run(run())


def _smi_name(value: object) -> str:
    tags = {
        Gauge32.tagSet: "Gauge32",
        Integer32.tagSet: "Integer32",
        OctetString.tagSet: "OctetString",
    }
    return tags.get(getattr(value, "tagSet", None), type(value).__name__)


# --- channels() per scope ----------------------------------------------------------------------
def test_if_types_are_walked_as_the_mib_numbers_them(farm: ModemFarm, snmp: SnmpClient) -> None:
    rows = snmp.walk(farm[RAW].target(), IF_TYPE)
    # docsCableMaclayer 127, docsOfdmDownstream 277, docsOfdmaUpstream 278
    assert {oid_suffix(oid, IF_TYPE)[-1]: value for oid, value in rows} == {
        2: 127,
        3: 277,
        4: 277,
        80: 278,
    }


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (Scope.DS_OFDM, [Channel(3, 193), Channel(4, 194)]),
        (Scope.US_OFDMA, [Channel(80, 41)]),
        (Scope.MAC_LAYER, [Channel(2, 0)]),
        (Scope.MODEM, [Channel(0, 0)]),
    ],
)
def test_channels_of_each_scope(
    farm: ModemFarm, snmp: SnmpClient, scope: Scope, expected: list[Channel]
) -> None:
    assert pnm.channels(snmp, farm[RAW].target(), scope) == expected


def test_ofdma_channels_come_sorted_by_if_index(farm: ModemFarm, snmp: SnmpClient) -> None:
    modem = farm[RAW]
    farm.call(setattr, modem, "ofdma_channels", ((82, 43), (81, 42)))
    try:
        assert pnm.channels(snmp, modem.target(), Scope.US_OFDMA) == [
            Channel(81, 42),
            Channel(82, 43),
        ]
    finally:
        farm.call(setattr, modem, "ofdma_channels", ((80, 41),))


def test_mac_layer_is_the_lowest_if_type_127(farm: ModemFarm, snmp: SnmpClient) -> None:
    modem = farm[RAW]
    farm.call(setattr, modem, "mac_layer_if_index", 1)
    try:
        assert pnm.channels(snmp, modem.target(), Scope.MAC_LAYER) == [Channel(1, 0)]
    finally:
        farm.call(setattr, modem, "mac_layer_if_index", 2)


# --- a capture of each test, its parameters read back and its upload(s) ------------------------
@dataclass(frozen=True)
class Case:
    parameters: dict[str, object]
    # OID (ifIndex appended) -> (SMI type, value) the CM must hold after the trigger
    columns: dict[str, tuple[str, int]]


CASES = {
    PnmTest.RXMER: Case({}, {}),
    PnmTest.CHANNEL_ESTIMATION: Case({}, {}),
    PnmTest.MODULATION_PROFILE: Case({}, {}),
    PnmTest.US_PRE_EQUALIZER: Case({}, {}),
    PnmTest.CONSTELLATION: Case(
        {"modulation_order_offset": 3, "number_sample_symbols": 4096},
        {f"{PNM_CM}.4.1.2": ("Gauge32", 3), f"{PNM_CM}.4.1.3": ("Gauge32", 4096)},
    ),
    PnmTest.FEC_SUMMARY: Case({"summary_type": "24h"}, {f"{PNM_CM}.7.1.1": ("Integer32", 3)}),
    PnmTest.HISTOGRAM: Case({"timeout_s": 1}, {f"{PNM_CM}.9.1.2": ("Gauge32", 1)}),
    PnmTest.SYMBOL_CAPTURE: Case({"trigger_timeout_s": 5}, {f"{PNM_CM}.2.1.2": ("Gauge32", 5)}),
    PnmTest.SPECTRUM_ANALYZER: Case(
        {
            "inactivity_timeout_s": 60,
            "first_segment_center_hz": 100_000_000,
            "last_segment_center_hz": 130_000_000,
            "segment_span_hz": 10_000_000,
            "bins_per_segment": 64,
            "noise_bandwidth": 200,
            "window_function": "blackman_harris",
            "number_of_averages": 4,
        },
        {
            f"{SPECTRUM}.1": ("Integer32", 1),  # Enable, armed true
            f"{SPECTRUM}.2": ("Integer32", 60),
            f"{SPECTRUM}.3": ("Gauge32", 100_000_000),
            f"{SPECTRUM}.4": ("Gauge32", 130_000_000),
            f"{SPECTRUM}.5": ("Gauge32", 10_000_000),
            f"{SPECTRUM}.6": ("Gauge32", 64),
            f"{SPECTRUM}.7": ("Gauge32", 200),
            f"{SPECTRUM}.8": ("Integer32", 2),  # blackmanHarris(2)
            f"{SPECTRUM}.9": ("Gauge32", 4),
        },
    ),
}
# The (ifIndex, channel id) each test runs on in the simulated modem, and its file-name
# column(s) there.
WHERE = {
    PnmTest.RXMER: (3, 193, [f"{PNM_CM}.5.1.8.3"]),
    PnmTest.CHANNEL_ESTIMATION: (3, 193, [f"{PNM_CM}.3.1.8.3"]),
    PnmTest.MODULATION_PROFILE: (3, 193, [f"{PNM_CM}.11.1.3.3"]),
    PnmTest.US_PRE_EQUALIZER: (80, 41, [f"{PNM_CM}.10.1.10.80", f"{PNM_CM}.10.1.9.80"]),
    PnmTest.CONSTELLATION: (3, 193, [f"{PNM_CM}.4.1.6.3"]),
    PnmTest.FEC_SUMMARY: (3, 193, [f"{PNM_CM}.7.1.4.3"]),
    PnmTest.HISTOGRAM: (2, 0, [f"{PNM_CM}.9.1.4.2"]),
    PnmTest.SYMBOL_CAPTURE: (3, 193, [f"{PNM_CM}.2.1.9.3"]),
    PnmTest.SPECTRUM_ANALYZER: (0, 0, [f"{SPECTRUM}.12.0"]),
}


@dataclass
class Captured:
    names: list[str]
    files: list[bytes]
    started: int  # epoch seconds around the trigger and the end of the wait
    ended: int


def capture(
    snmp: SnmpClient,
    receiver: Receiver,
    modem: SimulatedModem,
    test: PnmTest,
    parameters: dict[str, object],
) -> Captured:
    """What a worker does for one (test, interface): point the upload at the receiver,
    name the file(s), trigger, wait, and take the file(s) the receiver stored."""
    target = modem.target()
    (channel, *_) = pnm.channels(snmp, target, test.scope)
    names = [f"{spec.test_type.lower()}_{next(_names)}.bin" for spec in test.files]
    for name in names:
        receiver.expect(name, modem.upload_address, expires_at=time.time() + 30)
    wait_ready(snmp, target)
    started = int(time.time())
    pnm.prepare_upload(snmp, target, "127.0.0.1")
    pnm.start_capture(
        snmp, target, test, channel.if_index, names, parameters=parameters, check_ready=False
    )
    pnm.wait_sample_ready(snmp, target, test, channel.if_index, deadline_s=10, poll_s=0.05)
    ended = int(time.time())
    items = [wait_until(functools.partial(stored, receiver, name)) for name in names]
    assert all(item.path for item in items)
    return Captured(names, [Path(str(item.path)).read_bytes() for item in items], started, ended)


def stored(receiver: Receiver, name: str) -> Item | None:
    return next((item for item in receiver.items if item.key == name), None)


@pytest.mark.parametrize("test", UPLOADED, ids=lambda test: test.name)
def test_capture_sets_each_parameter_names_the_files_and_uploads_them(
    farm: ModemFarm, receiver: Receiver, snmp: SnmpClient, test: PnmTest
) -> None:
    modem, case = farm[CAPTURE], CASES[test]
    if_index, channel_id, name_oids = WHERE[test]
    got = capture(snmp, receiver, modem, test, case.parameters)

    columns = [f"{oid}.{if_index}" for oid in case.columns]
    answered = smi_get(modem.target(), *columns, *name_oids)
    assert [(kind, int(value)) for kind, value in answered[: len(columns)]] == list(  # type: ignore[call-overload]
        case.columns.values()
    )
    assert [(kind, bytes(value)) for kind, value in answered[len(columns) :]] == [  # type: ignore[call-overload]
        ("OctetString", name.encode()) for name in got.names
    ]

    for spec, data in zip(test.files, got.files, strict=True):
        assert data[:3] == b"PNN"
        assert data[3] == spec.pnn_type
        parsed = parse(data)
        assert parsed.header.file_type == spec.pnn_type
        assert parsed.mac_address == pnm.format_mac(modem.mac)
        if hasattr(parsed, "channel_id"):
            assert parsed.channel_id == channel_id
        captured_at = parsed.header.capture_time
        if spec.pnn_type == 8:  # no capture time in the header: the last set's timestamp
            captured_at = int(parsed.profiles[0].records[-1, 0])  # type: ignore[union-attr]
        assert captured_at is not None
        assert got.started <= captured_at <= got.ended


def test_spectrum_file_is_swept_as_requested(
    farm: ModemFarm, receiver: Receiver, snmp: SnmpClient
) -> None:
    parameters = {
        "first_segment_center_hz": 300_000_000,
        "last_segment_center_hz": 345_000_000,
        "segment_span_hz": 15_000_000,
        "bins_per_segment": 100,
        "noise_bandwidth": 75,
        "window_function": "flat_top",
    }
    (data,) = capture(snmp, receiver, farm[CAPTURE], PnmTest.SPECTRUM_ANALYZER, parameters).files

    # PNN9 after the 10-byte header: ch, MAC, first, last, span, bins, ENBW, window, length
    _ch, _mac, first, last, span, bins, enbw, window, length = struct.unpack_from(
        "!B6sIIIHHHI", data, 10
    )
    assert (first, last, span, bins, enbw, window) == (
        300_000_000,
        345_000_000,
        15_000_000,
        100,
        75,
        5,  # flatTop(5)
    )
    segments = 4  # centres 300, 315, 330, 345 MHz
    assert length == segments * bins * 2  # int16 per bin
    assert len(data) == 39 + length
    parsed = parse(data)
    assert parsed.amplitudes_db.shape == (segments, bins)  # type: ignore[union-attr]
    raw = struct.unpack_from(f"!{segments * bins}h", data, 39)
    assert parsed.amplitudes_db.ravel().tolist() == [v / 100 for v in raw]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("summary_type", "type_byte", "sets", "step_s"), [("10min", 2, 600, 1), ("24h", 3, 1440, 60)]
)
def test_fec_summary_covers_its_interval(
    farm: ModemFarm,
    receiver: Receiver,
    snmp: SnmpClient,
    summary_type: str,
    type_byte: int,
    sets: int,
    step_s: int,
) -> None:
    modem = farm[CAPTURE]
    got = capture(snmp, receiver, modem, PnmTest.FEC_SUMMARY, {"summary_type": summary_type})
    (data,) = got.files

    # PNN8: 6-byte header, then ch (6), MAC (7), summary type (13), profiles (14), and per
    # profile: id (1), number of sets (2), sets of !IIII (timestamp, codewords, corrected,
    # uncorrectable)
    assert data[:4] == b"PNN\x08"
    assert data[6] == 193
    assert data[7:13] == bytes.fromhex(pnm.normalize_mac(modem.mac))
    assert data[13] == type_byte
    profiles, offset = data[14], 15
    assert profiles >= 1
    for _ in range(profiles):
        _profile_id, count = struct.unpack_from("!BH", data, offset)
        assert count == sets
        stamps = [struct.unpack_from("!I", data, offset + 3 + 16 * i)[0] for i in range(count)]
        assert {b - a for a, b in itertools.pairwise(stamps)} == {step_s}
        assert got.started <= stamps[-1] <= got.ended
        offset += 3 + 16 * count
    assert offset == len(data)
    assert parse(data).summary_type == type_byte  # type: ignore[union-attr]


def test_pre_equalizer_uploads_both_files_under_their_names(
    farm: ModemFarm, receiver: Receiver, snmp: SnmpClient
) -> None:
    modem = farm[CAPTURE]
    got = capture(snmp, receiver, modem, PnmTest.US_PRE_EQUALIZER, {})
    coefficients, last_update = got.files
    assert got.names[0].startswith("us_pre_equalizer_coef_")
    assert got.names[1].startswith("us_pre_equalizer_coef_last_update_")
    assert coefficients[:4] == b"PNN\x06"
    assert last_update[:4] == b"PNN\x07"
    for data in got.files:  # US ch id at 10, CM MAC at 11 (reference §3)
        assert data[10] == 41
        assert data[11:17] == bytes.fromhex(pnm.normalize_mac(modem.mac))


# --- what the CM refuses ---------------------------------------------------------------------
NUM_SAMPLE_SYMB = f"{PNM_CM}.4.1.3.3"  # Unsigned32 (0..65535)
MOD_ORDER_OFFSET = f"{PNM_CM}.4.1.2.3"  # Unsigned32 (0..10)
CONST_FILE_NAME = f"{PNM_CM}.4.1.6.3"
CONST_TRIG_ENABLE = f"{PNM_CM}.4.1.1.3"
CONST_MEAS_STATUS = f"{PNM_CM}.4.1.5.3"


@pytest.mark.parametrize(
    ("oid", "value", "status"),
    [
        (NUM_SAMPLE_SYMB, Integer32(4096), "wrongType"),  # Integer32 where Gauge32 is due
        (f"{SPECTRUM}.2.0", Gauge32(60), "wrongType"),  # Gauge32 where Integer32 is due
        (f"{PNM_CM}.7.1.1.3", OctetString(b"24h"), "wrongType"),
        (CONST_TRIG_ENABLE, Gauge32(1), "wrongType"),
        (CONST_FILE_NAME, Integer32(1), "wrongType"),
        (NUM_SAMPLE_SYMB, Gauge32(65536), "wrongValue"),
        (MOD_ORDER_OFFSET, Gauge32(11), "wrongValue"),
        (f"{SPECTRUM}.6.0", Gauge32(4096), "wrongValue"),  # bins 2..2048
        (f"{SPECTRUM}.8.0", Integer32(9), "wrongValue"),  # no such window function
        (f"{PNM_CM}.7.1.1.3", Integer32(1), "wrongValue"),  # other(1) is not a summary
        (CONST_TRIG_ENABLE, Integer32(3), "wrongValue"),  # TruthValue is 1 or 2
        (CONST_MEAS_STATUS, Integer32(4), "notWritable"),
    ],
)
def test_the_cm_refuses_a_set_of_the_wrong_type_or_value(
    farm: ModemFarm, snmp: SnmpClient, oid: str, value: object, status: str
) -> None:
    target = farm[RAW].target()
    wait_ready(snmp, target)
    before = snmp.get(target, oid)
    with pytest.raises(SnmpRejected) as rejected:
        snmp.set(target, (oid, value))
    assert (rejected.value.status, rejected.value.oid) == (status, oid)
    assert isinstance(rejected.value, SnmpError)  # what the pipeline catches
    assert snmp.get(target, oid) == before


def test_a_refused_pdu_changes_nothing(farm: ModemFarm, snmp: SnmpClient) -> None:
    """A SET PDU is all or nothing (RFC 3416 §4.2.5): the varbinds before the refused one
    are not applied, and a trigger in it does not start the test."""
    modem, target = farm[RAW], farm[RAW].target()
    wait_ready(snmp, target)
    before = snmp.get(target, NUM_SAMPLE_SYMB, CONST_FILE_NAME)
    triggers = modem.triggers
    with pytest.raises(SnmpRejected) as rejected:
        snmp.set(
            target,
            (NUM_SAMPLE_SYMB, Gauge32(100)),
            (CONST_FILE_NAME, b"never.bin"),
            (CONST_TRIG_ENABLE, Integer32(1)),
            (MOD_ORDER_OFFSET, Integer32(1)),  # wrong type: the whole PDU fails
        )
    assert (rejected.value.status, rejected.value.oid) == ("wrongType", MOD_ORDER_OFFSET)
    assert snmp.get(target, NUM_SAMPLE_SYMB, CONST_FILE_NAME) == before
    assert modem.triggers == triggers
    assert pnm.ctl_status(snmp, target) is CtlStatus.READY


def test_start_capture_refuses_bad_parameters_before_any_set(
    farm: ModemFarm, snmp: SnmpClient
) -> None:
    modem, target = farm[RAW], farm[RAW].target()
    wait_ready(snmp, target)
    before, triggers = snmp.get(target, NUM_SAMPLE_SYMB), modem.triggers
    with pytest.raises(pnm.InvalidParameters, match="number_sample_symbols"):
        pnm.start_capture(
            snmp,
            target,
            PnmTest.CONSTELLATION,
            3,
            "bad.bin",
            parameters={"number_sample_symbols": 65536},
        )
    assert snmp.get(target, NUM_SAMPLE_SYMB) == before
    assert modem.triggers == triggers


def test_start_capture_reports_the_cm_s_refusal_of_a_long_file_name(
    farm: ModemFarm, snmp: SnmpClient
) -> None:
    """FileName is an SnmpAdminString, SIZE (0..255): a longer name is the CM's wrongLength,
    which start_capture passes on with the OID, and nothing of that PDU is applied."""
    modem, target = farm[RAW], farm[RAW].target()
    wait_ready(snmp, target)
    before, triggers = snmp.get(target, NUM_SAMPLE_SYMB, CONST_FILE_NAME), modem.triggers
    with pytest.raises(SnmpRejected) as rejected:
        pnm.start_capture(
            snmp,
            target,
            PnmTest.CONSTELLATION,
            3,
            "n" * 256,
            parameters={"number_sample_symbols": 100},
        )
    assert (rejected.value.status, rejected.value.oid) == ("wrongLength", CONST_FILE_NAME)
    assert snmp.get(target, NUM_SAMPLE_SYMB, CONST_FILE_NAME) == before
    assert modem.triggers == triggers
    snmp.set(target, (CONST_FILE_NAME, b"n" * 255))  # the longest name is taken whole
    assert snmp.get(target, CONST_FILE_NAME) == [b"n" * 255]


# --- terminal MeasStatus --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("test", "status"),
    [
        (PnmTest.RXMER, MeasStatus.ERROR),
        (PnmTest.HISTOGRAM, MeasStatus.RESOURCE_UNAVAILABLE),
        (PnmTest.US_PRE_EQUALIZER, MeasStatus.SAMPLE_TRUNCATED),
        (PnmTest.SPECTRUM_ANALYZER, MeasStatus.ERROR),
        (PnmTest.SYMBOL_CAPTURE, MeasStatus.ERROR),  # no CMTS trigger came
    ],
    ids=lambda value: value.name,
)
def test_a_failing_test_fails_the_wait_with_its_status(
    farm: ModemFarm, snmp: SnmpClient, test: PnmTest, status: MeasStatus
) -> None:
    modem, target = farm[FAILING], farm[FAILING].target()
    (channel, *_) = pnm.channels(snmp, target, test.scope)
    wait_ready(snmp, target)
    files = len(modem.bulk_files)
    farm.call(modem.failing_tests.__setitem__, test, status)
    try:
        pnm.start_capture(
            snmp,
            target,
            test,
            channel.if_index,
            ["failing.bin"] * len(test.files),
            parameters={"timeout_s": 1} if test is PnmTest.HISTOGRAM else None,
        )
        with pytest.raises(CaptureFailed) as failed:
            pnm.wait_sample_ready(snmp, target, test, channel.if_index, deadline_s=10, poll_s=0.05)
    finally:
        farm.call(modem.failing_tests.pop, test)
    assert failed.value.status is status
    assert status.name in str(failed.value)
    assert snmp.get(target, test.meas_status_oid(channel.if_index)) == [int(status)]
    assert len(modem.bulk_files) == files  # no file was made


# --- the SNMP-only spectrum -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("parameters", "centres"),
    [
        (
            {
                "first_segment_center_hz": 100_000_000,
                "last_segment_center_hz": 130_000_000,
                "segment_span_hz": 10_000_000,
                "bins_per_segment": 64,
            },
            [100_000_000, 110_000_000, 120_000_000, 130_000_000],
        ),
        (  # a last centre off the span's grid: the sweep stops at the last one below it
            {
                "first_segment_center_hz": 600_000_000,
                "last_segment_center_hz": 625_000_000,
                "segment_span_hz": 12_000_000,
                "bins_per_segment": 2,
                "noise_bandwidth": 400,
            },
            [600_000_000, 612_000_000, 624_000_000],
        ),
        ({}, [93_000_000 + 7_500_000 * i for i in range(121)]),  # the MIB defaults
    ],
    ids=["grid", "off-grid", "defaults"],
)
def test_spectrum_amplitude_walk_gives_one_segment_per_centre(
    farm: ModemFarm, snmp: SnmpClient, parameters: dict[str, int], centres: list[int]
) -> None:
    target = farm[RAW].target()
    wait_ready(snmp, target)
    data = pnm.spectrum_amplitude_walk(snmp, target, parameters, settle_s=0.01)

    span = parameters.get("segment_span_hz", 7_500_000)
    bins = parameters.get("bins_per_segment", 256)
    enbw = parameters.get("noise_bandwidth", 150)
    row = 20 + 2 * bins  # >5I head, then int16 bins
    assert len(data) == len(centres) * row
    for n, centre in enumerate(centres):
        head = struct.unpack_from("!5I", data, n * row)
        assert head == (centre, span, bins, span // bins, span // bins * enbw // 100)
    segments = parse_snmp_spectrum(data)
    assert [s.center_hz for s in segments] == centres
    assert {s.span_hz for s in segments} == {span}
    for n, segment in enumerate(segments):
        raw = struct.unpack_from(f"!{bins}h", data, n * row + 20)
        assert segment.amplitudes_db.tolist() == [v / 100 for v in raw]
    # the analyser was left enabled with FileEnable false: no file test ran
    assert snmp.get(target, f"{SPECTRUM}.1.0", f"{SPECTRUM}.10.0") == [1, 2]


# --- a CM that ignores the file name ---------------------------------------------------------
@pytest.mark.parametrize("test", UPLOADED, ids=lambda test: test.name)
def test_the_mib_default_name_of_each_file_parses_back_to_its_test(
    farm: ModemFarm, snmp: SnmpClient, test: PnmTest
) -> None:
    modem, target = farm[IGNORES_NAME], farm[IGNORES_NAME].target()
    snmp.set(target, (pnm.BULK_UPLOAD_CONTROL, 2))  # noAutoUpload: the names are enough
    (channel, *_) = pnm.channels(snmp, target, test.scope)
    wait_ready(snmp, target)
    before = {oid for oid, _ in snmp.walk(target, BULK_FILE_NAME)}
    started = int(time.time())
    names = [f"mine_{n}.bin" for n in range(len(test.files))]
    pnm.start_capture(
        snmp,
        target,
        test,
        channel.if_index,
        names,
        parameters={"timeout_s": 1} if test is PnmTest.HISTOGRAM else None,
    )
    pnm.wait_sample_ready(snmp, target, test, channel.if_index, deadline_s=10, poll_s=0.05)

    new = [value for oid, value in snmp.walk(target, BULK_FILE_NAME) if oid not in before]
    assert len(new) == len(test.files)
    for spec, name in zip(test.files, new, strict=True):
        assert isinstance(name, bytes)
        parsed = pnm.parse_default_file_name(name.decode())
        assert parsed is not None, name
        file_type, mac, epoch = parsed
        assert (file_type, mac) == (spec.test_type, pnm.normalize_mac(modem.mac))
        assert started <= epoch <= int(time.time())


def test_two_triggers_in_one_pdu_are_refused(farm: ModemFarm, snmp: SnmpClient) -> None:
    """One test at a time: the second trigger of a PDU is inconsistentValue, and neither
    starts."""
    modem, target = farm[RAW], farm[RAW].target()
    wait_ready(snmp, target)
    triggers = modem.triggers
    rxmer_4 = f"{PNM_CM}.5.1.1.4"
    with pytest.raises(SnmpRejected) as rejected:
        snmp.set(target, (CONST_TRIG_ENABLE, Integer32(1)), (rxmer_4, Integer32(1)))
    assert (rejected.value.status, rejected.value.oid) == ("inconsistentValue", rxmer_4)
    assert modem.triggers == triggers
    assert pnm.ctl_status(snmp, target) is CtlStatus.READY
