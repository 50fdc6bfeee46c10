"""DOCSIS PNM over SNMP: trigger a capture on a cable modem and wait for it.

Facts (OIDs, order, field lessons) are in shared/reference/docsis-pnm.md §2. The sequence for
one capture is: ``read_system_description`` (once per operation) → ``ofdm_channels`` →
``prepare_upload`` (CtlStatus, ``set_bulk_destination``) → per channel ``start_capture`` →
``wait_sample_ready``; the file then arrives over TFTP (``devices.links.tftp``). Every
function takes the ``SnmpClient`` and the ``SnmpTarget`` explicitly so a worker reuses its
one engine (see ``devices.links.snmp``).
"""

from __future__ import annotations

import enum
import ipaddress
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pysnmp.proto.rfc1902 import Gauge32, Integer32

from devices.links.snmp import SnmpClient, SnmpError, SnmpRejected, SnmpTarget, oid_suffix

PNM = "1.3.6.1.4.1.4491.2.1.27.1"
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
OFDM_CHANNEL_ID = "1.3.6.1.4.1.4491.2.1.28.1.9.1.1"
OFDMA_CHANNEL_ID = "1.3.6.1.4.1.4491.2.1.28.1.13.1.12"  # docsIf31CmUsOfdmaChanChannelId
IF_TYPE = "1.3.6.1.2.1.2.2.1.3"
IF_TYPE_MAC_LAYER = 127  # docsCableMaclayer
BULK_DEST_IP_TYPE = f"{PNM}.1.1.1.0"
BULK_DEST_IP = f"{PNM}.1.1.2.0"
BULK_DEST_PATH = f"{PNM}.1.1.3.0"
BULK_UPLOAD_CONTROL = f"{PNM}.1.1.4.0"
BULK_DESTINATION = (BULK_DEST_IP_TYPE, BULK_DEST_IP, BULK_DEST_PATH, BULK_UPLOAD_CONTROL)
CTL_STATUS = f"{PNM}.2.1.3.0"

TRUE = 1  # TruthValue
FALSE = 2
UPLOAD_AUTO = 3
MAX_CHANNELS = 64
MAX_INTERFACES = 512  # rows of ifTable walked to find the MAC-layer interface
SYS_DESCR_FIELDS = ("HW_REV", "VENDOR", "BOOTR", "SW_REV", "MODEL")


class CtlStatus(enum.IntEnum):
    """docsPnmCmCtlStatus: whether the modem accepts a new PNM test."""

    OTHER = 1
    READY = 2
    TEST_IN_PROGRESS = 3
    TEMP_REJECT = 4


class MeasStatus(enum.IntEnum):
    """MeasStatusType of the per-test tables."""

    OTHER = 1
    INACTIVE = 2
    BUSY = 3
    SAMPLE_READY = 4
    ERROR = 5
    RESOURCE_UNAVAILABLE = 6
    SAMPLE_TRUNCATED = 7
    INTERFACE_MODIFICATION = 8


TERMINAL_FAILURES = frozenset(
    {MeasStatus.ERROR, MeasStatus.RESOURCE_UNAVAILABLE, MeasStatus.SAMPLE_TRUNCATED}
)


class Scope(enum.StrEnum):
    """Which interfaces a test runs on (reference §2.1 step 3)."""

    DS_OFDM = "ds_ofdm"  # each OFDM downstream channel (docsIf31CmDsOfdmChanChannelId)
    US_OFDMA = "us_ofdma"  # each OFDMA upstream channel (docsIf31CmUsOfdmaChanChannelId)
    MAC_LAYER = "mac_layer"  # once, on the docsCableMaclayer ifIndex (ifType 127); channel 0
    MODEM = "modem"  # once, index 0 (the spectrum analyser's scalars); channel 0


@dataclass(frozen=True)
class FileSpec:
    """One file a trigger makes the CM upload."""

    test_type: str  # PyPNM's pnm_test_type of the file
    file_name_column: int
    default_prefix: str  # the MIB's default name: <prefix>_<CM MAC>_<epoch>
    pnn_type: int  # byte 3 of the "PNN" header


@dataclass(frozen=True)
class Parameter:
    """A read-write column set before the trigger. Integers go out as Gauge32 (the MIB's
    Unsigned32) unless ``signed``; a parameter with ``choices`` takes one of their names
    and sends its number as Integer32."""

    name: str
    column: int
    default: int | str
    minimum: int = 0
    maximum: int = 0xFFFFFFFF
    choices: tuple[tuple[str, int], ...] = ()
    signed: bool = False
    unit: str = ""

    def wire(self, value: int | str) -> Any:
        if self.choices:
            return Integer32(dict(self.choices)[str(value)])
        return Integer32(int(value)) if self.signed else Gauge32(int(value))

    def check(self, value: object) -> str | None:
        """Why ``value`` is refused, or None."""
        if self.choices:
            names = [name for name, _ in self.choices]
            return None if value in names else f"one of {names}"
        if isinstance(value, bool) or not isinstance(value, int):
            return "an integer" + (f" ({self.unit})" if self.unit else "")
        if not self.minimum <= value <= self.maximum:
            return f"from {self.minimum} to {self.maximum}" + (f" {self.unit}" if self.unit else "")
        return None


@dataclass(frozen=True)
class TestSpec:
    """What differs between PNM tests: the table (columns relative to its entry OID; the
    spectrum analyser's scalars use index 0), scope, files, parameters, and columns armed
    with a fixed value before the trigger."""

    table: str
    scope: Scope
    enable_column: int  # FileEnable / TrigEnable / Enable
    meas_status_column: int
    files: tuple[FileSpec, ...]
    parameters: tuple[Parameter, ...] = ()
    arm: tuple[tuple[int, int], ...] = ()  # (column, Integer32 value) set with the parameters
    walked: bool = False  # no upload: the worker walks the result (spectrum_amplitude_walk)

    def column(self, number: int, if_index: int) -> str:
        return f"{self.table}.{number}.{if_index}"


class PnmTest(enum.StrEnum):
    """PNM tests we can trigger; the value is PyPNM's ``pnm_test_type``."""

    RXMER = "DS_OFDM_RXMER_PER_SUBCAR"
    CHANNEL_ESTIMATION = "DS_OFDM_CHAN_EST_COEF"
    CONSTELLATION = "DS_CONSTELLATION_DISP"
    FEC_SUMMARY = "DS_OFDM_FEC_SUMMARY"
    HISTOGRAM = "DS_HISTOGRAM"
    MODULATION_PROFILE = "DS_OFDM_MODULATION_PROFILE"
    US_PRE_EQUALIZER = "US_PRE_EQUALIZER_COEF"
    SPECTRUM_ANALYZER = "SPECTRUM_ANALYZER"
    SYMBOL_CAPTURE = "DS_OFDM_SYMBOL_CAPTURE"
    # The same analyser without a file: its amplitude table is walked (PyPNM's name)
    SPECTRUM_ANALYZER_SNMP = "SPECTRUM_ANALYZER_SNMP_AMP_DATA"

    @property
    def spec(self) -> TestSpec:
        return _SPECS[self]

    @property
    def scope(self) -> Scope:
        return self.spec.scope

    @property
    def files(self) -> tuple[FileSpec, ...]:
        return self.spec.files

    @property
    def stored_prefix(self) -> str:
        """PyPNM's file-name prefix: the test type in lower case."""
        return self.value.lower()

    def file_name_oid(self, if_index: int, file: int = 0) -> str:
        return self.spec.column(self.files[file].file_name_column, if_index)

    def enable_oid(self, if_index: int) -> str:
        return self.spec.column(self.spec.enable_column, if_index)

    def meas_status_oid(self, if_index: int) -> str:
        return self.spec.column(self.spec.meas_status_column, if_index)


def _file(test_type: str, column: int, prefix: str, pnn_type: int) -> tuple[FileSpec]:
    return (FileSpec(test_type, column, prefix, pnn_type),)


SPECTRUM_CTRL = "1.3.6.1.4.1.4491.2.1.20.1.34"  # docsIf3CmSpectrumAnalysisCtrlCmd (scalars)
SPECTRUM_AMPLITUDE_DATA = "1.3.6.1.4.1.4491.2.1.20.1.35.1.2"  # …MeasAmplitudeData.<freq>
SPECTRUM_ENABLE_COLUMN = 1
SPECTRUM_FILE_ENABLE_COLUMN = 10
WINDOW_FUNCTIONS = (  # SpectrumAnalysisWindowFunction (DOCS-IF3-MIB)
    ("hann", 1),
    ("blackman_harris", 2),
    ("rectangular", 3),
    ("hamming", 4),
    ("flat_top", 5),
    ("gaussian", 6),
    ("chebyshev", 7),
)
MAX_FREQUENCY_HZ = 1_794_000_000  # top of the DOCSIS 3.1 downstream band
MAX_SPECTRUM_SEGMENTS = 1000  # bounds one capture's size (a 256-bin segment is ~0.5 kB)
FEC_SUMMARY_TYPES = (("10min", 2), ("24h", 3))  # docsPnmCmDsOfdmFecSumType
FEC_SUMMARY_DURATION_S = {"10min": 600, "24h": 86_400}

SPECTRUM_PARAMETERS = (
    Parameter("inactivity_timeout_s", 2, 300, 0, 86_400, signed=True, unit="s"),
    Parameter("first_segment_center_hz", 3, 93_000_000, 0, MAX_FREQUENCY_HZ, unit="Hz"),
    Parameter("last_segment_center_hz", 4, 993_000_000, 0, MAX_FREQUENCY_HZ, unit="Hz"),
    Parameter("segment_span_hz", 5, 7_500_000, 1_000_000, 900_000_000, unit="Hz"),
    Parameter("bins_per_segment", 6, 256, 2, 2048, unit="bins"),
    Parameter("noise_bandwidth", 7, 150, 50, 500, unit="hundredths of a bin"),
    Parameter("window_function", 8, "hann", choices=WINDOW_FUNCTIONS),
    Parameter("number_of_averages", 9, 1, 1, 1000),
)

# Columns and defaults from DOCS-PNM-MIB-2024-07-05 and DOCS-IF3-MIB (see reference §2.2).
_SPECS = {
    # docsPnmCmDsOfdmRxMerEntry: FileEnable .1, MeasStatus .7, FileName .8
    PnmTest.RXMER: TestSpec(
        f"{PNM}.2.5.1", Scope.DS_OFDM, 1, 7, _file(PnmTest.RXMER.value, 8, "PNMDsMer", 4)
    ),
    # docsPnmCmOfdmChEstCoefEntry: TrigEnable .1, MeasStatus .7, FileName .8
    PnmTest.CHANNEL_ESTIMATION: TestSpec(
        f"{PNM}.2.3.1",
        Scope.DS_OFDM,
        1,
        7,
        _file(PnmTest.CHANNEL_ESTIMATION.value, 8, "PNMChEstCoef", 2),
    ),
    # docsPnmCmDsConstDispMeasEntry: TrigEnable .1, ModOrderOffset .2, NumSampleSymb .3,
    # MeasStatus .5, FileName .6
    PnmTest.CONSTELLATION: TestSpec(
        f"{PNM}.2.4.1",
        Scope.DS_OFDM,
        1,
        5,
        _file(PnmTest.CONSTELLATION.value, 6, "PNMDSConDisp", 3),
        (
            Parameter("modulation_order_offset", 2, 0, 0, 10),
            Parameter("number_sample_symbols", 3, 8192, 1, 65535, unit="samples"),
        ),
    ),
    # docsPnmCmDsOfdmFecEntry: SumType .1, FileEnable .2, MeasStatus .3, FileName .4
    PnmTest.FEC_SUMMARY: TestSpec(
        f"{PNM}.2.7.1",
        Scope.DS_OFDM,
        2,
        3,
        _file(PnmTest.FEC_SUMMARY.value, 4, "PNMFecSum", 8),
        (Parameter("summary_type", 1, "10min", choices=FEC_SUMMARY_TYPES),),
    ),
    # docsPnmCmDsHistEntry (MAC-layer ifIndex): Enable .1, TimeOut .2, MeasStatus .3,
    # FileName .4. TimeOut 0 (collect forever) is refused: a capture must end.
    PnmTest.HISTOGRAM: TestSpec(
        f"{PNM}.2.9.1",
        Scope.MAC_LAYER,
        1,
        3,
        _file(PnmTest.HISTOGRAM.value, 4, "PNMHist", 5),
        (Parameter("timeout_s", 2, 10, 1, 65535, unit="s"),),
    ),
    # docsPnmCmDsOfdmModProfEntry: FileEnable .1, MeasStatus .2, FileName .3
    PnmTest.MODULATION_PROFILE: TestSpec(
        f"{PNM}.2.11.1",
        Scope.DS_OFDM,
        1,
        2,
        _file(PnmTest.MODULATION_PROFILE.value, 3, "PNMModProfile", 10),
    ),
    # docsPnmCmUsPreEqEntry (OFDMA ifIndex): FileEnable .1, MeasStatus .8,
    # LastUpdateFileName .9, FileName .10: one trigger, two files
    PnmTest.US_PRE_EQUALIZER: TestSpec(
        f"{PNM}.2.10.1",
        Scope.US_OFDMA,
        1,
        8,
        (
            FileSpec(PnmTest.US_PRE_EQUALIZER.value, 10, "PNMUsPreEq", 6),
            FileSpec("US_PRE_EQUALIZER_COEF_LAST_UPDATE", 9, "PNMUsPreEqLastUpdate", 7),
        ),
    ),
    # docsIf3CmSpectrumAnalysisCtrlCmd scalars: Enable .1, InactivityTimeout .2, first/last
    # segment centre .3/.4, span .5, bins .6, ENBW .7, window .8, averages .9; the PNM MIB
    # adds FileEnable .10, MeasStatus .11, FileName .12
    PnmTest.SPECTRUM_ANALYZER: TestSpec(
        SPECTRUM_CTRL,
        Scope.MODEM,
        SPECTRUM_FILE_ENABLE_COLUMN,
        11,
        _file(PnmTest.SPECTRUM_ANALYZER.value, 12, "PNMSpecAnData", 9),
        SPECTRUM_PARAMETERS,
        arm=((SPECTRUM_ENABLE_COLUMN, TRUE),),
    ),
    # docsPnmCmDsOfdmSymCapEntry: TrigEnable .1, TrigEnableTimeout .2, MeasStatus .8,
    # CaptFileName .9. The CM captures when a CMTS trigger message names its group:
    # without one it times out (MeasStatus error). Timeout 0 (wait forever) is refused.
    PnmTest.SYMBOL_CAPTURE: TestSpec(
        f"{PNM}.2.2.1",
        Scope.DS_OFDM,
        1,
        8,
        _file(PnmTest.SYMBOL_CAPTURE.value, 9, "PNMSymCap", 1),
        (Parameter("trigger_timeout_s", 2, 60, 1, 3600, unit="s"),),
    ),
    # docsIf3CmSpectrumAnalysisCtrlCmd with FileEnable false; the rows of
    # docsIf3CmSpectrumAnalysisMeasAmplitudeData are the result (no PNN header, no name)
    PnmTest.SPECTRUM_ANALYZER_SNMP: TestSpec(
        SPECTRUM_CTRL,
        Scope.MODEM,
        SPECTRUM_ENABLE_COLUMN,
        11,
        _file(PnmTest.SPECTRUM_ANALYZER_SNMP.value, 0, "", 0),
        SPECTRUM_PARAMETERS,
        walked=True,
    ),
}
FILE_SPECS = {spec.test_type: spec for test in PnmTest for spec in test.files}


class InvalidParameters(ValueError):
    """A test's parameters are refused; ``errors`` maps each field to why."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in errors.items()))
        self.errors = errors


def validate_parameters(
    test: PnmTest, parameters: Mapping[str, object] | None
) -> dict[str, int | str]:
    """``parameters`` checked against the test's spec and completed with its defaults.
    Raises ``InvalidParameters`` naming every refused field."""
    given = dict(parameters or {})
    known = {parameter.name: parameter for parameter in test.spec.parameters}
    errors = {
        name: "not a parameter of "
        + test.name
        + (f" (it takes {sorted(known)})" if known else " (it takes none)")
        for name in given
        if name not in known
    }
    for name, parameter in known.items():
        if name in given and (why := parameter.check(given[name])):
            errors[name] = f"must be {why}"
    values = {  # each given value was checked above
        name: cast(int | str, given.get(name, parameter.default))
        for name, parameter in known.items()
    }
    if not errors and test.spec.parameters is SPECTRUM_PARAMETERS:
        errors.update(_spectrum_errors(values))
    if errors:
        raise InvalidParameters(errors)
    return values


def _spectrum_errors(values: Mapping[str, Any]) -> dict[str, str]:
    first, last = values["first_segment_center_hz"], values["last_segment_center_hz"]
    if first > last:
        return {"last_segment_center_hz": "must be at least first_segment_center_hz"}
    segments = (last - first) // values["segment_span_hz"] + 1
    if segments > MAX_SPECTRUM_SEGMENTS:
        return {
            "segment_span_hz": f"gives {segments} segments from first to last centre; at "
            f"most {MAX_SPECTRUM_SEGMENTS} (widen the span or narrow the range)"
        }
    return {}


def measure_time_s(test: PnmTest, parameters: Mapping[str, Any]) -> float:
    """How long the CM itself takes over a test by the MIB, beyond its usual seconds: the
    histogram collects for its TimeOut, a FEC summary covers 10 minutes or 24 hours, a
    symbol capture waits up to its trigger timeout."""
    if test is PnmTest.HISTOGRAM:
        return float(parameters.get("timeout_s", 0))
    if test is PnmTest.FEC_SUMMARY:
        return float(FEC_SUMMARY_DURATION_S[str(parameters.get("summary_type", "10min"))])
    if test is PnmTest.SYMBOL_CAPTURE:
        return float(parameters.get("trigger_timeout_s", 0))
    return 0.0


class PnmError(SnmpError):
    """A PNM capture could not be run."""


class ModemBusy(PnmError):
    """CtlStatus is not ready, or the modem answered inconsistentValue: try again later."""


class CaptureTimeout(PnmError):
    """MeasStatus did not reach sampleReady before the deadline."""


class CaptureFailed(PnmError):
    """The modem reported a terminal MeasStatus (error, resourceUnavailable, truncated)."""

    def __init__(self, status: MeasStatus) -> None:
        super().__init__(f"measurement ended with {status.name}")
        self.status = status


@dataclass(frozen=True)
class Channel:
    """An interface a test runs on: its ifIndex and channel id (0 for a once-per-modem
    test)."""

    if_index: int
    channel_id: int


OfdmChannel = Channel  # the downstream OFDM case, as the name was before other scopes


# --- names ---------------------------------------------------------------------------------
_MAC_RE = re.compile(r"^[0-9a-f]{12}$")
# The spellings an API publishes as accepted: aa:bb:cc:dd:ee:ff, aa-bb-..., aabbccddeeff,
# aabb.ccdd.eeff (normalize_mac takes these and a few looser ones).
MAC_PATTERN = (
    r"[0-9A-Fa-f]{2}(?:[:.-]?[0-9A-Fa-f]{2}){5}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}"
)
_DEFAULT_NAME_RE = re.compile(
    r"^(?P<prefix>[A-Za-z]+)_(?P<mac>[0-9A-Fa-f]{12})_(?P<epoch>\d{1,12})$"
)


def normalize_mac(mac: str) -> str:
    """``AA:BB:CC:DD:EE:FF`` / ``aabb.ccdd.eeff`` / ``aa-bb-...`` → ``aabbccddeeff``."""
    plain = re.sub(r"[:.\-\s]", "", mac).lower()
    if not _MAC_RE.match(plain):
        raise ValueError(f"not a MAC address: {mac!r}")
    return plain


def format_mac(mac: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` form, as PyPNM's records show it."""
    plain = normalize_mac(mac)
    return ":".join(plain[i : i + 2] for i in range(0, 12, 2))


def _file_spec(test: PnmTest | str) -> FileSpec:
    """A test's (first) file, or the file of a file test type (e.g. the pre-eq last update)."""
    return test.files[0] if isinstance(test, PnmTest) else FILE_SPECS[test]


def default_file_name(test: PnmTest | str, mac: str, epoch: int) -> str:
    """The name the MIB says the CM uses when FileName is empty (``PNMDsMer_<MAC>_<epoch>``)."""
    return f"{_file_spec(test).default_prefix}_{normalize_mac(mac)}_{int(epoch)}"


def parse_default_file_name(name: str) -> tuple[str, str, int] | None:
    """``(file test type, mac, epoch)`` for a MIB default name, else ``None``.
    Case-insensitive MAC."""
    match = _DEFAULT_NAME_RE.match(name)
    if not match:
        return None
    for spec in FILE_SPECS.values():
        if spec.default_prefix == match["prefix"]:
            return spec.test_type, match["mac"].lower(), int(match["epoch"])
    return None


def stored_file_name(test: PnmTest | str, mac: str, channel_id: int, epoch: int) -> str:
    """PyPNM's name, e.g. ``ds_ofdm_rxmer_per_subcar_aabbccddeeff_193_1764820677.bin``
    (``test``: a test, or a file test type such as ``US_PRE_EQUALIZER_COEF_LAST_UPDATE``)."""
    prefix = _file_spec(test).test_type.lower()
    return f"{prefix}_{normalize_mac(mac)}_{int(channel_id)}_{int(epoch)}.bin"


# --- sysDescr ------------------------------------------------------------------------------
_SYS_DESCR_RE = re.compile(r"<<(?P<body>.*?)>>", re.DOTALL)


def parse_sys_descr(text: str) -> dict[str, str]:
    """``{HW_REV, VENDOR, BOOTR, SW_REV, MODEL}`` from ``<<HW_REV: 1.0; VENDOR: X; ...>>``.

    Unlike PyPNM, a different format is not "unreachable": missing fields are empty strings.
    """
    fields = dict.fromkeys(SYS_DESCR_FIELDS, "")
    match = _SYS_DESCR_RE.search(text)
    if not match:
        return fields
    for part in match["body"].split(";"):
        key, sep, value = part.partition(":")
        key = key.strip().upper()
        if sep and key in fields:
            fields[key] = value.strip()
    return fields


def read_system_description(client: SnmpClient, target: SnmpTarget) -> dict[str, str]:
    """GET sysDescr.0 and parse it (once per operation; the result is reused)."""
    (value,) = client.get(target, SYS_DESCR)
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")
    return parse_sys_descr(text)


# --- the capture sequence ------------------------------------------------------------------
def ofdm_channels(client: SnmpClient, target: SnmpTarget) -> list[Channel]:
    """Walk docsIf31CmDsOfdmChanChannelId: the last OID part is the ifIndex."""
    return _channel_table(client, target, OFDM_CHANNEL_ID)


def _channel_table(client: SnmpClient, target: SnmpTarget, column: str) -> list[Channel]:
    rows = client.walk(target, column, max_rows=MAX_CHANNELS)
    channels = [
        Channel(if_index=oid_suffix(oid, column)[-1], channel_id=int(value))
        for oid, value in rows
        if isinstance(value, int)
    ]
    return sorted(channels, key=lambda channel: channel.if_index)


def channels(client: SnmpClient, target: SnmpTarget, scope: Scope) -> list[Channel]:
    """The interfaces a test of ``scope`` runs on (reference §2.1 step 3): the OFDM or
    OFDMA channel tables, the MAC-layer ifIndex (the first ifType 127), or index 0."""
    if scope is Scope.DS_OFDM:
        return ofdm_channels(client, target)
    if scope is Scope.US_OFDMA:
        return _channel_table(client, target, OFDMA_CHANNEL_ID)
    if scope is Scope.MAC_LAYER:
        rows = client.walk(target, IF_TYPE, max_rows=MAX_INTERFACES)
        found = [oid_suffix(oid, IF_TYPE)[-1] for oid, value in rows if value == IF_TYPE_MAC_LAYER]
        return [Channel(min(found), 0)] if found else []
    return [Channel(0, 0)]


def _as_ctl_status(value: object) -> CtlStatus:
    try:
        return CtlStatus(value)  # type: ignore[arg-type]  # whatever the agent sent
    except ValueError:
        return CtlStatus.OTHER


def ctl_status(client: SnmpClient, target: SnmpTarget) -> CtlStatus:
    (value,) = client.get(target, CTL_STATUS)
    return _as_ctl_status(value)


def _set_checked(client: SnmpClient, target: SnmpTarget, *pairs: tuple[str, Any]) -> None:
    """One SET (of one or more varbinds) whose echoed values must equal what we sent
    (PyPNM ignored failed SETs)."""
    try:
        echoed = client.set(target, *pairs)
    except SnmpRejected as exc:
        if exc.status == "inconsistentValue":
            where = exc.oid or pairs[0][0]
            raise ModemBusy(f"{where}: inconsistentValue (modem busy)") from exc
        raise
    for (oid, value), answer in zip(pairs, echoed, strict=True):
        sent = int(value) if isinstance(value, int | Integer32 | Gauge32) else value
        if answer != sent:
            raise PnmError(f"{oid}: modem echoed {answer!r} instead of {sent!r}")


def set_bulk_destination(
    client: SnmpClient, target: SnmpTarget, tftp_ip: str, path: str = ""
) -> None:
    """Point the modem's bulk upload at our TFTP receiver (address as raw bytes, autoUpload)
    in ONE SET: RFC 4001 wants an InetAddress to agree with its InetAddressType, which a
    SET per object cannot keep when the type changes (a 16-byte address under ipv4 between
    two PDUs); a SET is applied whole or not at all. ``start_capture`` relies on
    several-varbind SETs too.

    The MIB lets the CM reject these unless CtlStatus is ready; that surfaces as ``ModemBusy``.
    """
    values = bulk_destination_values(tftp_ip, path)
    _set_checked(client, target, *zip(BULK_DESTINATION, values, strict=True))


def bulk_destination_values(tftp_ip: str, path: str = "") -> list[int | bytes]:
    """The four bulk-destination values as the modem echoes them (type, address, path,
    control)."""
    address = ipaddress.ip_address(tftp_ip)
    return [1 if address.version == 4 else 2, address.packed, path.encode(), UPLOAD_AUTO]


def prepare_upload(client: SnmpClient, target: SnmpTarget, tftp_ip: str, path: str = "") -> None:
    """Check CtlStatus is ready and the bulk destination points at ``tftp_ip`` in ONE GET;
    the four SETs run only when the destination differs (first tick, or the modem was
    reconfigured). ``ModemBusy`` if a test is still in progress."""
    status, *current = client.get(target, CTL_STATUS, *BULK_DESTINATION)
    status = _as_ctl_status(status)
    if status is not CtlStatus.READY:
        raise ModemBusy(f"CtlStatus is {status.name}")
    if current != bulk_destination_values(tftp_ip, path):
        set_bulk_destination(client, target, tftp_ip, path)


def start_capture(
    client: SnmpClient,
    target: SnmpTarget,
    test: PnmTest,
    if_index: int,
    file_names: str | Sequence[str],
    *,
    parameters: Mapping[str, object] | None = None,
    check_ready: bool = True,
) -> None:
    """Set the test's parameters and armed columns and name its file(s) (one name per
    ``test.files``) in ONE SET, then trigger ``test`` on ``if_index`` in a second: the
    enable must come last. ``ModemBusy`` if not ready; ``InvalidParameters`` before any
    I/O. ``check_ready=False`` skips the CtlStatus GET when ``prepare_upload`` just did it.
    """
    if test.spec.walked:
        raise ValueError(f"{test.name} uploads no file: read it with spectrum_amplitude_walk")
    names = [file_names] if isinstance(file_names, str) else list(file_names)
    if len(names) != len(test.files):
        raise ValueError(f"{test.name} uploads {len(test.files)} file(s), got {len(names)} names")
    values = validate_parameters(test, parameters)
    spec = test.spec
    pairs: list[tuple[str, Any]] = [
        (spec.column(parameter.column, if_index), parameter.wire(values[parameter.name]))
        for parameter in spec.parameters
    ]
    pairs += [(spec.column(column, if_index), Integer32(value)) for column, value in spec.arm]
    pairs += [
        (spec.column(file.file_name_column, if_index), name.encode())
        for file, name in zip(test.files, names, strict=True)
    ]
    if check_ready:
        status = ctl_status(client, target)
        if status is not CtlStatus.READY:
            raise ModemBusy(f"CtlStatus is {status.name}")
    _set_checked(client, target, *pairs)
    _set_checked(client, target, (test.enable_oid(if_index), TRUE))


STALE_GRACE_S = 10.0


@dataclass(frozen=True)
class PollVerdict:
    """What one MeasStatus poll says: the status, whether the sample is ready (and not a
    stale one), and whether the capture has been seen running so far."""

    status: MeasStatus
    ready: bool
    seen_running: bool


def read_meas_status(
    client: SnmpClient, target: SnmpTarget, test: PnmTest, if_index: int
) -> tuple[object, object]:
    """One GET of MeasStatus and FileEnable/TrigEnable (one PDU): the input of ``judge_poll``."""
    value, enable = client.get(target, test.meas_status_oid(if_index), test.enable_oid(if_index))
    return value, enable


def judge_poll(
    test: PnmTest,
    if_index: int,
    value: object,
    enable: object,
    *,
    seen_running: bool,
    elapsed_s: float,
    deadline_s: float,
    poll_s: float,
    stale_grace_s: float = STALE_GRACE_S,
) -> PollVerdict:
    """Judge one poll taken ``elapsed_s`` after the trigger (pure: no I/O, no clock).

    A sampleReady left over from the previous test is reported at once after a trigger; it
    is accepted only when this capture is known to have ended: it was seen busy/inactive,
    or the CM has reset FileEnable/TrigEnable to false (the MIB's end-of-test signal, read
    in the same PDU; some firmware never resets it), or ``stale_grace_s`` has passed.
    Terminal statuses raise ``CaptureFailed``; when the next poll would come after
    ``deadline_s``, ``CaptureTimeout``.
    """
    try:
        status = MeasStatus(value)  # type: ignore[arg-type]  # whatever the agent sent
    except ValueError:
        status = MeasStatus.OTHER
    if status in TERMINAL_FAILURES:
        raise CaptureFailed(status)
    if status in (MeasStatus.BUSY, MeasStatus.INACTIVE):
        seen_running = True
    elif status is MeasStatus.SAMPLE_READY and (
        seen_running or enable == FALSE or elapsed_s >= stale_grace_s
    ):
        return PollVerdict(status, ready=True, seen_running=seen_running)
    if elapsed_s + poll_s > deadline_s:
        raise CaptureTimeout(
            f"{test.name} on ifIndex {if_index}: {status.name} after {elapsed_s:.1f} s"
        )
    return PollVerdict(status, ready=False, seen_running=seen_running)


def wait_sample_ready(
    client: SnmpClient,
    target: SnmpTarget,
    test: PnmTest,
    if_index: int,
    deadline_s: float,
    poll_s: float = 1.0,
    stale_grace_s: float = STALE_GRACE_S,
) -> MeasStatus:
    """Poll MeasStatus until ``judge_poll`` finds the sample ready, for at most
    ``deadline_s`` seconds from now (blocking; the pipeline polls with follow-up tasks)."""
    started = time.monotonic()
    seen_running = False
    while True:
        value, enable = read_meas_status(client, target, test, if_index)
        verdict = judge_poll(
            test,
            if_index,
            value,
            enable,
            seen_running=seen_running,
            elapsed_s=time.monotonic() - started,
            deadline_s=deadline_s,
            poll_s=poll_s,
            stale_grace_s=stale_grace_s,
        )
        if verdict.ready:
            return verdict.status
        seen_running = verdict.seen_running
        time.sleep(poll_s)


def spectrum_amplitude_walk(
    client: SnmpClient,
    target: SnmpTarget,
    parameters: Mapping[str, object] | None = None,
    *,
    settle_s: float = 2.0,
) -> bytes:
    """The spectrum without a file: set the analyser's parameters with FileEnable false,
    enable it, give it ``settle_s`` to sweep, then walk docsIf3CmSpectrumAnalysisMeasAmplitudeData
    (one row per segment: a ``>5I`` head, then int16 bins in 0.01 dB). The rows concatenated
    are what ``captures.pnm.parse_snmp_spectrum`` reads. Each request has the target's
    timeout; the walk stops after MAX_SPECTRUM_SEGMENTS rows."""
    test = PnmTest.SPECTRUM_ANALYZER_SNMP
    values = validate_parameters(test, parameters)
    spec = test.spec
    pairs: list[tuple[str, Any]] = [
        (spec.column(parameter.column, 0), parameter.wire(values[parameter.name]))
        for parameter in spec.parameters
    ]
    pairs.append((spec.column(SPECTRUM_FILE_ENABLE_COLUMN, 0), Integer32(FALSE)))
    _set_checked(client, target, *pairs)
    _set_checked(client, target, (spec.column(SPECTRUM_ENABLE_COLUMN, 0), Integer32(TRUE)))
    time.sleep(settle_s)
    rows = client.walk(target, SPECTRUM_AMPLITUDE_DATA, max_rows=MAX_SPECTRUM_SEGMENTS)
    blobs = [value for _, value in rows if isinstance(value, bytes)]
    if not blobs:
        raise PnmError("the spectrum analyser returned no amplitude data")
    return b"".join(blobs)
