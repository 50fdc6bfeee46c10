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
from dataclasses import dataclass

from devices.links.snmp import SnmpClient, SnmpError, SnmpRejected, SnmpTarget, oid_suffix

PNM = "1.3.6.1.4.1.4491.2.1.27.1"
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
OFDM_CHANNEL_ID = "1.3.6.1.4.1.4491.2.1.28.1.9.1.1"
BULK_DEST_IP_TYPE = f"{PNM}.1.1.1.0"
BULK_DEST_IP = f"{PNM}.1.1.2.0"
BULK_DEST_PATH = f"{PNM}.1.1.3.0"
BULK_UPLOAD_CONTROL = f"{PNM}.1.1.4.0"
CTL_STATUS = f"{PNM}.2.1.3.0"

TRUE = 1  # TruthValue
FALSE = 2
UPLOAD_AUTO = 3
MAX_CHANNELS = 64
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


@dataclass(frozen=True)
class TestSpec:
    """What differs between PNM tests: table columns, file naming, PNN type code."""

    table: str  # the test's table entry OID; columns below are relative to it
    enable_column: int  # FileEnable / TrigEnable
    meas_status_column: int
    file_name_column: int
    default_prefix: str  # the MIB's default file-name prefix
    pnn_type: int  # byte 3 of the "PNN" header

    def column(self, number: int, if_index: int) -> str:
        return f"{self.table}.{number}.{if_index}"


class PnmTest(enum.StrEnum):
    """PNM tests we can trigger; the value is PyPNM's ``pnm_test_type``."""

    RXMER = "DS_OFDM_RXMER_PER_SUBCAR"
    CHANNEL_ESTIMATION = "DS_OFDM_CHAN_EST_COEF"

    @property
    def spec(self) -> TestSpec:
        return _SPECS[self]

    @property
    def stored_prefix(self) -> str:
        """PyPNM's file-name prefix: the test type in lower case."""
        return self.value.lower()

    def file_name_oid(self, if_index: int) -> str:
        return self.spec.column(self.spec.file_name_column, if_index)

    def enable_oid(self, if_index: int) -> str:
        return self.spec.column(self.spec.enable_column, if_index)

    def meas_status_oid(self, if_index: int) -> str:
        return self.spec.column(self.spec.meas_status_column, if_index)


_SPECS = {
    # docsPnmCmDsOfdmRxMerEntry: FileEnable .1, MeasStatus .7, FileName .8
    PnmTest.RXMER: TestSpec(f"{PNM}.2.5.1", 1, 7, 8, "PNMDsMer", 4),
    # docsPnmCmOfdmChEstCoefEntry: TrigEnable .1, MeasStatus .7, FileName .8
    PnmTest.CHANNEL_ESTIMATION: TestSpec(f"{PNM}.2.3.1", 1, 7, 8, "PNMChEstCoef", 2),
}


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
class OfdmChannel:
    if_index: int
    channel_id: int


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


def default_file_name(test: PnmTest, mac: str, epoch: int) -> str:
    """The name the MIB says the CM uses when FileName is empty (``PNMDsMer_<MAC>_<epoch>``)."""
    return f"{test.spec.default_prefix}_{normalize_mac(mac)}_{int(epoch)}"


def parse_default_file_name(name: str) -> tuple[PnmTest, str, int] | None:
    """``(test, mac, epoch)`` for a MIB default name, else ``None``. Case-insensitive MAC."""
    match = _DEFAULT_NAME_RE.match(name)
    if not match:
        return None
    for test in PnmTest:
        if test.spec.default_prefix == match["prefix"]:
            return test, match["mac"].lower(), int(match["epoch"])
    return None


def stored_file_name(test: PnmTest, mac: str, channel_id: int, epoch: int) -> str:
    """PyPNM's name, e.g. ``ds_ofdm_rxmer_per_subcar_aabbccddeeff_193_1764820677.bin``."""
    return f"{test.stored_prefix}_{normalize_mac(mac)}_{int(channel_id)}_{int(epoch)}.bin"


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
def ofdm_channels(client: SnmpClient, target: SnmpTarget) -> list[OfdmChannel]:
    """Walk docsIf31CmDsOfdmChanChannelId: the last OID part is the ifIndex."""
    rows = client.walk(target, OFDM_CHANNEL_ID, max_rows=MAX_CHANNELS)
    channels = [
        OfdmChannel(if_index=oid_suffix(oid, OFDM_CHANNEL_ID)[-1], channel_id=int(value))
        for oid, value in rows
        if isinstance(value, int)
    ]
    return sorted(channels, key=lambda channel: channel.if_index)


def _as_ctl_status(value: object) -> CtlStatus:
    try:
        return CtlStatus(value)  # type: ignore[arg-type]  # whatever the agent sent
    except ValueError:
        return CtlStatus.OTHER


def ctl_status(client: SnmpClient, target: SnmpTarget) -> CtlStatus:
    (value,) = client.get(target, CTL_STATUS)
    return _as_ctl_status(value)


def _set_checked(client: SnmpClient, target: SnmpTarget, oid: str, value: int | bytes) -> None:
    """One SET whose echoed value must equal what we sent (PyPNM ignored failed SETs)."""
    try:
        (echoed,) = client.set(target, (oid, value))
    except SnmpRejected as exc:
        if exc.status == "inconsistentValue":
            raise ModemBusy(f"{oid}: inconsistentValue (modem busy)") from exc
        raise
    if echoed != value:
        raise PnmError(f"{oid}: modem echoed {echoed!r} instead of {value!r}")


def set_bulk_destination(
    client: SnmpClient, target: SnmpTarget, tftp_ip: str, path: str = ""
) -> None:
    """Point the modem's bulk upload at our TFTP receiver (address as raw bytes, autoUpload).

    The MIB lets the CM reject these unless CtlStatus is ready; that surfaces as ``ModemBusy``.
    """
    address_type, address, encoded_path, control = bulk_destination_values(tftp_ip, path)
    _set_checked(client, target, BULK_DEST_IP_TYPE, address_type)
    _set_checked(client, target, BULK_DEST_IP, address)
    _set_checked(client, target, BULK_DEST_PATH, encoded_path)
    _set_checked(client, target, BULK_UPLOAD_CONTROL, control)


def bulk_destination_values(tftp_ip: str, path: str = "") -> list[int | bytes]:
    """The four bulk-destination values as the modem echoes them (type, address, path,
    control)."""
    address = ipaddress.ip_address(tftp_ip)
    return [1 if address.version == 4 else 2, address.packed, path.encode(), UPLOAD_AUTO]


def prepare_upload(client: SnmpClient, target: SnmpTarget, tftp_ip: str, path: str = "") -> None:
    """Check CtlStatus is ready and the bulk destination points at ``tftp_ip`` in ONE GET;
    the four SETs run only when the destination differs (first tick, or the modem was
    reconfigured). ``ModemBusy`` if a test is still in progress."""
    status, *current = client.get(
        target, CTL_STATUS, BULK_DEST_IP_TYPE, BULK_DEST_IP, BULK_DEST_PATH, BULK_UPLOAD_CONTROL
    )
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
    file_name: str,
    *,
    check_ready: bool = True,
) -> None:
    """Name the file and trigger ``test`` on ``if_index``; ``ModemBusy`` if not ready.

    ``check_ready=False`` skips the CtlStatus GET when ``prepare_upload`` just did it.
    """
    if check_ready:
        status = ctl_status(client, target)
        if status is not CtlStatus.READY:
            raise ModemBusy(f"CtlStatus is {status.name}")
    _set_checked(client, target, test.file_name_oid(if_index), file_name.encode())
    _set_checked(client, target, test.enable_oid(if_index), TRUE)


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
