"""Simulated DOCSIS 3.1 cable modems: real SNMP agents that run PNM tests and upload by TFTP.

Why this shape: an ``SnmpEngine`` costs ~0.2 s and ~1 MiB, so a farm of N modems is ONE
pysnmp engine with N UDP transports (one per modem, each its own socket: 127.0.0.1 or ::1
with an ephemeral port, or its own 127.0.x.y address). Each transport answers SNMPv2c
itself with ``devices.links.snmp_wire`` (the engine cost a bench about 80 % of the farm's
CPU); v3 goes on to the engine, where one MIB controller answers every request and picks
the modem from the transport the request came in on. The loop runs on a thread;
measurements finish on loop timers; files are written with ``pnm_files`` and uploaded by
a small thread pool with the tftpy client, from the modem's own address, to the
destination set over SNMP (docsPnmBulkDest*).

Behaviour follows the MIB: CtlStatus ready/testInProgress, MeasStatus inactive → busy →
sampleReady, FileEnable/TrigEnable back to false after the test, inconsistentValue for
triggers and bulk/file-name changes while a test runs, a docsPnmBulkFileTable row per file,
a SET PDU applied whole or not at all (RFC 3416).
Per-modem knobs: ``measure_delay_s`` (seconds, or a (min, max) range drawn per measurement)
and ``failure`` (see ``Failure``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import enum
import functools
import hashlib
import ipaddress
import logging
import resource
import secrets
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import tftpy
from pysnmp import error as snmp_error
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902
from pysnmp.proto.api import v2c
from pysnmp.smi import error as smi_error
from pysnmp.smi.instrum import AbstractMibInstrumController

from devices.links import pnm, snmp_wire
from devices.links.pnm import CtlStatus, MeasStatus, PnmTest
from devices.links.snmp import AUTH_PROTOCOLS, PRIV_PROTOCOLS, SnmpTarget
from simulators.pnm_files import snmp_spectrum_rows, upload_file

log = logging.getLogger(__name__)

Oid = tuple[int, ...]
DEFAULT_SYS_DESCR = (
    "DOCSIS 3.1 Cable Modem <<HW_REV: 1.0; VENDOR: FieldRelay Sim; BOOTR: 1.0.0; "
    "SW_REV: sim-1.0; MODEL: SIM-CM31>>"
)
BULK_FILE_TABLE = f"{pnm.PNM}.1.2.1"  # docsPnmBulkFileEntry: Index .1 Name .2 Control .3 Status .4
BULK_FILE_ROWS = 16  # the CM keeps only the last few files
UPLOAD_COMPLETED = 4
UPLOAD_ERROR = 7
STALE_S = 0.3  # how long a stale sampleReady shows after a trigger in that failure mode
FD_HEADROOM = 256  # open files the farm's process needs besides sockets and uploads
Delay = float | tuple[float, float]  # seconds, or a (min, max) range


class Failure(enum.StrEnum):
    """Ways a simulated modem misbehaves, as seen in the field."""

    NONE = "none"
    TIMEOUT = "timeout"  # stops answering SNMP
    WRONG_COMMUNITY = "wrong_community"  # its communities are not the ones we were given
    NO_UPLOAD = "no_upload"  # the test completes, the file never arrives
    TRUNCATED_UPLOAD = "truncated_upload"  # the upload stops half way with a TFTP error
    STALE_SAMPLE_READY = "stale_sample_ready"  # sampleReady from the last test shows first
    IGNORE_FILE_NAME = "ignore_file_name"  # uploads under the MIB default name


@dataclass(frozen=True)
class V3User:
    """The farm's SNMPv3 user: authNoPriv unless a priv key is given (authPriv, AES/DES)."""

    user: str = "pnm"
    auth_key: str = field(default="pnm-auth-key", repr=False)
    priv_key: str = field(default="", repr=False)
    auth_protocol: str = "SHA"
    priv_protocol: str = "NONE"

    @property
    def security_level(self) -> str:
        return "authPriv" if self.priv_key else "authNoPriv"


@dataclass
class Upload:
    """What a simulated modem sent (for tests and benches)."""

    file_name: str
    size: int
    sha256: str
    triggered_at: float  # epoch seconds
    sent_at: float
    ok: bool
    error: str = ""


@dataclass
class _Test:
    """One (test, ifIndex) row of the modem's PNM tables (the spectrum analyser's scalars
    are its row 0)."""

    test: PnmTest
    file_names: list[bytes]  # one per file the test uploads
    params: dict[int, int]  # parameter and armed columns -> value (the MIB defaults first)
    enable: int = pnm.FALSE
    status: MeasStatus = MeasStatus.INACTIVE

    def parameters(self) -> dict[str, int | str]:
        """The test's parameters by name, as the CM holds them now."""
        values: dict[str, int | str] = {}
        for parameter in self.test.spec.parameters:
            value = self.params[parameter.column]
            names = {number: name for name, number in parameter.choices}
            values[parameter.name] = names.get(value, value) if names else value
        return values


def _new_row(test: PnmTest, status: MeasStatus) -> _Test:
    return _Test(test, [b""] * len(test.files), dict(_default_params(test)), status=status)


@functools.cache
def _default_params(test: PnmTest) -> dict[int, int]:
    """Parameter and armed columns at their MIB defaults (computed once: ~20 us a row)."""
    defaults = pnm.validate_parameters(test, None)
    params = {p.column: int(p.wire(defaults[p.name])) for p in test.spec.parameters}
    params.update({column: pnm.FALSE for column, _ in test.spec.arm})
    return params


class _Rows(dict[tuple[PnmTest, int], _Test]):
    """A modem's test rows, each made on first use. Most modems of a big farm never run
    most of their ~15 tests; made eagerly they were 90 % of a 10,000-modem farm's start-up
    time and memory (3 s, 180 MiB)."""

    def __init__(self, status: MeasStatus) -> None:
        super().__init__()
        self.status = status

    def __missing__(self, key: tuple[PnmTest, int]) -> _Test:
        row = self[key] = _new_row(key[0], self.status)
        return row


Interfaces = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], int]
Cell = tuple[tuple[PnmTest, int], str, int]


def _interfaces(scope: pnm.Scope, interfaces: Interfaces) -> list[tuple[int, int]]:
    channels, ofdma_channels, mac_layer_if_index = interfaces
    if scope is pnm.Scope.DS_OFDM:
        return list(channels)
    if scope is pnm.Scope.US_OFDMA:
        return list(ofdma_channels)
    if scope is pnm.Scope.MAC_LAYER:
        return [(mac_layer_if_index, 0)]
    return [(0, 0)]


@functools.lru_cache(maxsize=64)
def _cell_map(interfaces: Interfaces) -> dict[Oid, Cell]:
    """OID -> ((test, ifIndex), what, which) of the test tables, for ``get`` and ``set``:
    what is "file_name" (which: the file), "enable", "meas_status" or "param" (which: the
    column). The same for every modem with the same interfaces, so shared (read-only)."""
    cells: dict[Oid, Cell] = {}
    for test in PnmTest:
        if test.spec.walked:  # the SNMP-only spectrum shares the analyser's scalars
            continue
        spec = test.spec
        for if_index, _ in _interfaces(test.scope, interfaces):
            columns = [("enable", spec.enable_column, 0)]
            columns += [("meas_status", spec.meas_status_column, 0)]
            columns += [("file_name", f.file_name_column, n) for n, f in enumerate(test.files)]
            columns += [("param", column, column) for column in _default_params(test)]
            for what, column, which in columns:
                cells[_oid(spec.column(column, if_index))] = ((test, if_index), what, which)
    return cells


IF_TYPES = {pnm.Scope.DS_OFDM: 277, pnm.Scope.US_OFDMA: 278, pnm.Scope.MAC_LAYER: 127}


class SimulatedModem:
    """One modem's state and MIB. All mutation happens on the farm's loop thread."""

    def __init__(
        self,
        farm: ModemFarm,
        index: int,
        address: str,
        *,
        measure_delay_s: Delay,
        failure: Failure = Failure.NONE,
        channels: tuple[tuple[int, int], ...] = ((3, 193), (4, 194)),
        ofdma_channels: tuple[tuple[int, int], ...] = ((80, 41),),
        mac_layer_if_index: int = 2,
        sys_descr: str = DEFAULT_SYS_DESCR,
    ) -> None:
        self.farm = farm
        self.index = index
        self.address = address
        self.port = 0
        self.mac = (
            f"02:00:5e:{(index >> 16) & 0xFF:02x}:{(index >> 8) & 0xFF:02x}:{index & 0xFF:02x}"
        )
        self.measure_delay_s = measure_delay_s
        self.failure = failure
        self.channels = channels  # OFDM downstream (ifIndex, channel id)
        self.ofdma_channels = ofdma_channels  # OFDMA upstream (ifIndex, channel id)
        self.mac_layer_if_index = mac_layer_if_index
        # A test that ends in this MeasStatus (error, resourceUnavailable ...), no file.
        self.failing_tests: dict[PnmTest, MeasStatus] = {}
        self.sys_descr = sys_descr
        self.ctl_status = CtlStatus.READY
        self.dest_type = 1
        self.dest_ip = b"\0\0\0\0"
        self.dest_path = b""
        self.upload_control = 2  # noAutoUpload until told otherwise
        self.tests = _Rows(
            MeasStatus.SAMPLE_READY
            if failure is Failure.STALE_SAMPLE_READY
            else MeasStatus.INACTIVE
        )
        self.bulk_files: list[tuple[int, bytes, int]] = []  # (row, name, upload status)
        self._next_bulk_row = 1
        self.triggers = 0
        self.uploads: list[Upload] = []

    # --- identity ----------------------------------------------------------------------------
    @property
    def ipv6(self) -> bool:
        return ":" in self.address

    @property
    def upload_address(self) -> str:
        """Where its uploads come from. The TFTP destination is IPv4 (the receiver is), so
        an IPv6 modem uploads from its IPv4 side, 127.0.0.1, as a dual-stack modem does."""
        return "127.0.0.1" if self.ipv6 else self.address

    @property
    def community(self) -> str:
        """The read-write community the platform is given for this modem."""
        return self.farm.community

    @property
    def actual_community(self) -> str:
        """The community the agent really accepts (differs under WRONG_COMMUNITY)."""
        if self.failure is Failure.WRONG_COMMUNITY:
            return self.farm.alt_community
        return self.farm.community

    def target(self, **options: Any) -> SnmpTarget:
        """An SNMPv2c target for this modem with the community the platform was given."""
        options.setdefault("community", self.community)
        return SnmpTarget(self.address, self.port, "2c", **options)

    def v3_target(self, **options: Any) -> SnmpTarget:
        user = self.farm.v3_user
        return SnmpTarget(
            self.address,
            self.port,
            "3",
            user=user.user,
            auth_key=user.auth_key,
            priv_key=user.priv_key,
            auth_protocol=user.auth_protocol,
            priv_protocol=user.priv_protocol,
            **options,
        )

    def interfaces(self, scope: pnm.Scope) -> list[tuple[int, int]]:
        """(ifIndex, channel id) of the interfaces a test of ``scope`` runs on."""
        return _interfaces(scope, self._interfaces)

    @property
    def _interfaces(self) -> Interfaces:
        return (self.channels, self.ofdma_channels, self.mac_layer_if_index)

    @property
    def _cells(self) -> dict[Oid, Cell]:
        return _cell_map(self._interfaces)

    # --- MIB -------------------------------------------------------------------------------
    def _layout(self) -> _Layout:
        """The modem's MIB layout now (about 80 objects; more while the spectrum analyser
        runs), shared with every modem whose MIB has the same objects. Looked up on each
        request from what decides the objects, so a change (a bulk-file row, a sweep, a
        channel) is seen at once, with nothing to invalidate."""
        spectrum = self.tests.get((PnmTest.SPECTRUM_ANALYZER, 0))  # not made by a read
        sweep = None
        if spectrum is not None and spectrum.params[pnm.SPECTRUM_ENABLE_COLUMN] == pnm.TRUE:
            sweep = tuple(sorted(spectrum.parameters().items()))
        return _mib_layout(self._interfaces, sweep, tuple(row for row, _, _ in self.bulk_files))

    def get(self, oid: Oid) -> Any:
        """One object's value. GETs and SET echoes (the hot path) read the scalar or row
        they name; only what is left (walked tables) looks up the layout."""
        scalar = _SCALARS.get(oid)
        if scalar is not None:
            return scalar(self)
        cell = self._cells.get(oid)
        if cell is not None:
            key, what, which = cell
            return _cell(self.tests[key], what, which)
        value = self._layout().values.get(oid)
        return None if value is None else value(self)

    def get_next(self, oid: Oid) -> tuple[Oid, Any] | None:
        layout = self._layout()
        position = bisect.bisect_right(layout.oids, oid)
        if position == len(layout.oids):
            return None
        found = layout.oids[position]
        return found, layout.values[found](self)

    def set(self, oid: Oid, value: Any, idx: int) -> None:
        """Apply one SET; raise the SMI error a real CM would answer."""
        self.check_set(oid, value, idx)()

    def check_set(self, oid: Oid, value: Any, idx: int) -> Callable[[], None]:
        """Check one SET varbind as the CM would (raise its SMI error) and return the change
        without making it: a PDU is applied only once every varbind passed (RFC 3416 §4.2.5),
        so a refused PDU neither leaves half its values set nor starts a test."""
        if oid in _BULK_OIDS:
            self._require_ready(oid, idx)
            return self._bulk_change(oid, value, idx)
        cell = self._cells.get(oid)
        if cell is None or cell[1] == "meas_status":
            if self.get(oid) is not None:
                raise smi_error.NotWritableError(name=oid, idx=idx)
            raise smi_error.NoCreationError(name=oid, idx=idx)
        key, what, which = cell
        row = self.tests[key]
        if what == "file_name":
            name = _admin_string(value, oid, idx)
            self._require_ready(oid, idx)
            return functools.partial(row.file_names.__setitem__, which, name)
        if what == "param":
            self._require_ready(oid, idx)
            number = _parameter_value(row.test, which, value, oid, idx)
            return functools.partial(row.params.__setitem__, which, number)
        _require_type(value, v2c.Integer, oid, idx)
        if int(value) not in (pnm.TRUE, pnm.FALSE):
            raise smi_error.WrongValueError(name=oid, idx=idx)
        if int(value) == pnm.FALSE:
            return _unchanged
        self._require_ready(oid, idx)
        return functools.partial(self._trigger, *key)

    def check_pdu(self, var_binds: list[tuple[Oid, Any]]) -> list[Callable[[], None]]:
        """The changes of a whole SET PDU, each varbind checked against the state before it;
        a second trigger in one PDU is inconsistentValue (one test at a time)."""
        changes: list[Callable[[], None]] = []
        triggered = False
        for idx, (oid, value) in enumerate(var_binds):
            change = self.check_set(oid, value, idx)
            if isinstance(change, functools.partial) and change.func == self._trigger:
                if triggered:
                    raise smi_error.InconsistentValueError(name=oid, idx=idx)
                triggered = True
            changes.append(change)
        self._check_address_agrees(var_binds)
        return changes

    def _check_address_agrees(self, var_binds: list[tuple[Oid, Any]]) -> None:
        """RFC 4001: the destination address must have its type's length once the PDU is
        applied (inconsistentValue otherwise), so a type and address that change together
        must come in one PDU."""
        new = {oid: value for oid, value in var_binds if oid in _ADDRESS_OIDS}
        if not new:
            return
        address_type = int(new.get(_oid(pnm.BULK_DEST_IP_TYPE), self.dest_type))
        address = bytes(new.get(_oid(pnm.BULK_DEST_IP), self.dest_ip))
        if len(address) not in (0, 4 if address_type == 1 else 16):
            oid = next(iter(new))
            idx = next(i for i, (name, _) in enumerate(var_binds) if name == oid)
            raise smi_error.InconsistentValueError(name=oid, idx=idx)

    def _require_ready(self, oid: Oid, idx: int) -> None:
        if self.ctl_status is not CtlStatus.READY:
            raise smi_error.InconsistentValueError(name=oid, idx=idx)

    def _bulk_change(self, oid: Oid, value: Any, idx: int) -> Callable[[], None]:
        if oid == _oid(pnm.BULK_DEST_IP_TYPE):
            _require_type(value, v2c.Integer, oid, idx)
            if int(value) not in (1, 2):
                raise smi_error.WrongValueError(name=oid, idx=idx)
            return functools.partial(setattr, self, "dest_type", int(value))
        if oid == _oid(pnm.BULK_DEST_IP):
            _require_type(value, v2c.OctetString, oid, idx)
            if len(bytes(value)) not in (0, 4, 16):
                raise smi_error.WrongLengthError(name=oid, idx=idx)
            return functools.partial(setattr, self, "dest_ip", bytes(value))
        if oid == _oid(pnm.BULK_DEST_PATH):
            return functools.partial(setattr, self, "dest_path", _admin_string(value, oid, idx))
        _require_type(value, v2c.Integer, oid, idx)
        if int(value) not in (1, 2, 3):
            raise smi_error.WrongValueError(name=oid, idx=idx)
        return functools.partial(setattr, self, "upload_control", int(value))

    # --- the measurement ---------------------------------------------------------------------
    def _trigger(self, test: PnmTest, if_index: int) -> None:
        row = self.tests[(test, if_index)]
        row.enable = pnm.TRUE
        self.ctl_status = CtlStatus.TEST_IN_PROGRESS
        self.triggers += 1
        delay = self.measurement_delay(self.triggers)
        if test is PnmTest.HISTOGRAM:  # it collects for its TimeOut (the MIB)
            delay = max(delay, float(row.parameters()["timeout_s"]))
        triggered_at = time.time()
        loop = self.farm.loop
        if self.failure is Failure.STALE_SAMPLE_READY:
            row.status = MeasStatus.SAMPLE_READY  # left over from the previous test
            loop.call_later(min(STALE_S, delay / 2), _set_status, row, MeasStatus.BUSY)
        else:
            row.status = MeasStatus.BUSY
        loop.call_later(delay, self._finish, test, if_index, triggered_at)

    def measurement_delay(self, number: int) -> float:
        """How long the modem's ``number``-th measurement takes. A range is drawn uniformly
        from the farm's seed, the modem and ``number``, so a run repeats with the same seed
        whatever order a campaign triggers the modems in."""
        delay = self.measure_delay_s
        if not isinstance(delay, tuple):
            return delay
        low, high = delay
        draw = hashlib.blake2b(f"{self.farm.seed}:{self.index}:{number}".encode(), digest_size=8)
        return low + (high - low) * int.from_bytes(draw.digest()) / 2**64

    def _finish(self, test: PnmTest, if_index: int, triggered_at: float) -> None:
        row = self.tests[(test, if_index)]
        row.enable = pnm.FALSE  # the CM resets FileEnable/TrigEnable when the test ends
        self.ctl_status = CtlStatus.READY
        if test in self.failing_tests:
            row.status = self.failing_tests[test]
            return
        row.status = MeasStatus.SAMPLE_READY
        channel_id = dict(self.interfaces(test.scope))[if_index]
        epoch = int(time.time())
        for spec, requested in zip(test.files, row.file_names, strict=True):
            name = requested.decode("ascii", "replace")
            if not name or self.failure is Failure.IGNORE_FILE_NAME:
                name = pnm.default_file_name(spec.test_type, self.mac, epoch)
            bulk_row = self._add_bulk_file(name.encode())
            if self.upload_control != 3 or self.failure is Failure.NO_UPLOAD:
                continue
            data = upload_file(
                spec.test_type,
                channel_id=channel_id,
                mac=self.mac,
                capture_time=epoch,
                seed=self.index * 1_000_003 + self.triggers,
                parameters=row.parameters(),
            )
            self.farm.upload(self, bulk_row, name, data, triggered_at)

    def _add_bulk_file(self, name: bytes) -> int:
        row = self._next_bulk_row
        self._next_bulk_row += 1
        self.bulk_files = [*self.bulk_files[-(BULK_FILE_ROWS - 1) :], (row, name, 3)]
        return row

    def upload_finished(self, bulk_row: int, record: Upload) -> None:
        self.uploads.append(record)
        status = UPLOAD_COMPLETED if record.ok else UPLOAD_ERROR
        self.bulk_files = [
            (row, name, status if row == bulk_row else old) for row, name, old in self.bulk_files
        ]

    def destination(self) -> str | None:
        """The TFTP server's IPv4 address set over SNMP, or None.

        Only loopback destinations unless the farm allows others: a simulator must not
        spray uploads at whatever address a test or a typo sets.
        """
        if self.dest_type != 1 or len(self.dest_ip) != 4:
            return None
        address = ipaddress.IPv4Address(self.dest_ip)
        if address.is_unspecified or not (address.is_loopback or self.farm.allow_remote):
            return None
        return str(address)


def _set_status(row: _Test, status: MeasStatus) -> None:
    if row.status is not MeasStatus.SAMPLE_READY or row.enable == pnm.TRUE:
        row.status = status


@functools.cache
def _oid(dotted: str) -> Oid:
    return tuple(int(part) for part in dotted.split("."))


_SCALARS: dict[Oid, Callable[[SimulatedModem], Any]] = {
    _oid(pnm.SYS_DESCR): lambda m: v2c.OctetString(m.sys_descr),
    _oid(pnm.BULK_DEST_IP_TYPE): lambda m: v2c.Integer(m.dest_type),
    _oid(pnm.BULK_DEST_IP): lambda m: v2c.OctetString(m.dest_ip),
    _oid(pnm.BULK_DEST_PATH): lambda m: v2c.OctetString(m.dest_path),
    _oid(pnm.BULK_UPLOAD_CONTROL): lambda m: v2c.Integer(m.upload_control),
    _oid(pnm.CTL_STATUS): lambda m: v2c.Integer(int(m.ctl_status)),
}


def _cell(row: _Test, what: str, which: int) -> Any:
    """A test-table cell as the agent answers it."""
    if what == "file_name":
        return v2c.OctetString(row.file_names[which])
    if what == "enable":
        return v2c.Integer(row.enable)
    if what == "meas_status":
        return v2c.Integer(int(row.status))
    parameter = _PARAMETERS[row.test].get(which)
    if parameter is None or parameter.choices or parameter.signed:
        return v2c.Integer(row.params[which])  # an armed TruthValue, an enum, Integer32
    return v2c.Gauge32(row.params[which])


_PARAMETERS = {test: {p.column: p for p in test.spec.parameters} for test in PnmTest}


Value = Callable[[SimulatedModem], Any]


class _Layout(NamedTuple):
    """A MIB's objects in walk order and how to read each from a modem."""

    oids: list[Oid]
    values: dict[Oid, Value]


@functools.lru_cache(maxsize=256)
def _mib_layout(
    interfaces: Interfaces,
    sweep: tuple[tuple[str, int | str], ...] | None,
    bulk_rows: tuple[int, ...],
) -> _Layout:
    """The objects of a modem with these interfaces, spectrum sweep (None: analyser off) and
    bulk-file rows. Built and sorted once, not on every GETNEXT (a walk step cost ~230 us
    when each built and sorted the whole MIB)."""
    values: dict[Oid, Value] = dict(_SCALARS)
    channels, ofdma_channels, _ = interfaces
    for table, rows in ((pnm.OFDM_CHANNEL_ID, channels), (pnm.OFDMA_CHANNEL_ID, ofdma_channels)):
        for if_index, channel_id in rows:
            values[_oid(f"{table}.{if_index}")] = _constant(v2c.Unsigned32, channel_id)
    for scope, if_type in IF_TYPES.items():
        for if_index, _ in _interfaces(scope, interfaces):
            values[_oid(f"{pnm.IF_TYPE}.{if_index}")] = _constant(v2c.Integer, if_type)
    for oid, cell in _cell_map(interfaces).items():
        values[oid] = functools.partial(_read_cell, cell)
    for centre, data in _spectrum_rows(sweep) if sweep is not None else []:
        values[_oid(f"{pnm.SPECTRUM_AMPLITUDE_DATA}.{centre}")] = _constant(v2c.OctetString, data)
    for row in bulk_rows:
        values[_oid(f"{BULK_FILE_TABLE}.1.{row}")] = _constant(v2c.Unsigned32, row)
        for column in (2, 4):
            values[_oid(f"{BULK_FILE_TABLE}.{column}.{row}")] = functools.partial(
                _read_bulk_file, row, column
            )
    return _Layout(sorted(values), values)


def _constant(kind: Callable[[Any], Any], value: Any) -> Value:
    """A value that only a new layout changes (a fresh object per read, as pysnmp gets)."""
    return lambda _modem: kind(value)


def _read_cell(cell: Cell, modem: SimulatedModem) -> Any:
    key, what, which = cell
    return _cell(modem.tests[key], what, which)


def _read_bulk_file(row: int, column: int, modem: SimulatedModem) -> Any:
    name, status = next((n, s) for r, n, s in modem.bulk_files if r == row)
    return v2c.OctetString(name) if column == 2 else v2c.Integer(status)


@functools.lru_cache(maxsize=8)
def _spectrum_rows(parameters: tuple[tuple[str, int | str], ...]) -> list[tuple[int, bytes]]:
    """The amplitude rows of one sweep setting (the same for each bulk-file state's layout)."""
    return snmp_spectrum_rows(dict(parameters))


def _parameter_value(test: PnmTest, column: int, value: Any, oid: Oid, idx: int) -> int:
    """A parameter (or armed column) SET checked as the CM would: its SMI type, range and
    named values (wrongType, wrongValue)."""
    parameter = _PARAMETERS[test].get(column)
    gauge = parameter is not None and not (parameter.choices or parameter.signed)
    expected = v2c.Gauge32 if gauge else v2c.Integer
    if value.tagSet != expected.tagSet:
        raise smi_error.WrongTypeError(name=oid, idx=idx)
    number = int(value)
    if parameter is None:
        allowed = number in (pnm.TRUE, pnm.FALSE)
    elif parameter.choices:
        allowed = number in dict(parameter.choices).values()
    else:
        allowed = parameter.minimum <= number <= parameter.maximum
    if not allowed:
        raise smi_error.WrongValueError(name=oid, idx=idx)
    return number


_BULK_OIDS = frozenset(_oid(o) for o in pnm.BULK_DESTINATION)
_ADDRESS_OIDS = frozenset(_oid(o) for o in (pnm.BULK_DEST_IP_TYPE, pnm.BULK_DEST_IP))


def _require_type(value: Any, expected: type, oid: Oid, idx: int) -> None:
    if not isinstance(value, expected):
        raise smi_error.WrongTypeError(name=oid, idx=idx)


def _admin_string(value: Any, oid: Oid, idx: int) -> bytes:
    """An SnmpAdminString SET: SIZE (0..255), so a longer value is wrongLength (not cut)."""
    _require_type(value, v2c.OctetString, oid, idx)
    if len(bytes(value)) > 255:
        raise smi_error.WrongLengthError(name=oid, idx=idx)
    return bytes(value)


def _unchanged() -> None:
    """The change of a FileEnable/TrigEnable false: nothing (a running test is not stopped)."""


class _Drop(snmp_error.PySnmpError):  # type: ignore[misc]  # pysnmp ships no types
    """Raised to answer nothing: the command responder swallows non-SMI pysnmp errors."""


class _FarmController(AbstractMibInstrumController):  # type: ignore[misc]  # as above
    """Answers for every modem; the request's transport domain says which one."""

    def __init__(self, farm: ModemFarm) -> None:
        self.farm = farm

    def _modem(self, snmpEngine: Any) -> SimulatedModem:
        request = snmpEngine.observer.get_execution_context("rfc3412.receiveMessage:request")
        modem = self.farm._by_domain.get(tuple(request["transportDomain"]))
        if modem is None or modem.failure is Failure.TIMEOUT:
            raise _Drop("not answering")
        allowed = self.farm.security_names(modem)
        if str(request["securityName"]) not in allowed:
            raise _Drop("wrong community")  # a real CM silently drops these
        return modem

    def read_variables(self, *var_binds: Any, **ctx: Any) -> list[tuple[Any, Any]]:
        modem = self._modem(ctx["snmpEngine"])
        result = []
        for idx, (name, _) in enumerate(var_binds):
            oid = tuple(name)
            value = modem.get(oid)
            if ctx["acFun"]("read", (name, value), snmpEngine=ctx["snmpEngine"], idx=idx):
                value = None  # not in view
            if value is None:
                value = v2c.NoSuchInstance() if _is_object(modem, oid) else v2c.NoSuchObject()
            result.append((name, value))
        return result

    def read_next_variables(self, *var_binds: Any, **ctx: Any) -> list[tuple[Any, Any]]:
        modem = self._modem(ctx["snmpEngine"])
        result = []
        for idx, (name, _) in enumerate(var_binds):
            oid = tuple(name)
            while True:
                found = modem.get_next(oid)
                if found is None:
                    result.append((name, v2c.EndOfMibView()))
                    break
                oid, value = found
                obj = v2c.ObjectIdentifier(oid)
                if not ctx["acFun"]("read", (obj, value), snmpEngine=ctx["snmpEngine"], idx=idx):
                    result.append((obj, value))
                    break
        return result

    def write_variables(self, *var_binds: Any, **ctx: Any) -> list[tuple[Any, Any]]:
        modem = self._modem(ctx["snmpEngine"])
        for idx, (name, value) in enumerate(var_binds):
            if ctx["acFun"]("write", (name, value), snmpEngine=ctx["snmpEngine"], idx=idx):
                raise smi_error.NoAccessError(name=name, idx=idx)
        for change in modem.check_pdu([(tuple(name), value) for name, value in var_binds]):
            change()
        return [(name, _echo(modem, name, value)) for name, value in var_binds]


# --- SNMPv2c without the engine -----------------------------------------------------------
# pysnmp's command responder spent about 80 % of a farm's CPU (pyasn1 decoding and encoding,
# the engine's message processing), which a bench pays on the same cores as what it
# measures. v2c is a community and a PDU: each modem's transport answers it here with the
# codec our client uses (checked against pyasn1 in its tests); v3 and anything else goes on
# to the engine. ``ModemFarm(v2c_via_engine=True)`` sends v2c there too, as the reference
# ``simulators/tests`` compare this path with.
class _Udp4(udp.UdpAsyncioTransport):  # type: ignore[misc]  # pysnmp ships no types
    modem: SimulatedModem

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        if not _answer_v2c(self, datagram, address):
            super().datagram_received(datagram, address)


class _Udp6(udp6.Udp6AsyncioTransport):  # type: ignore[misc]  # as above
    modem: SimulatedModem

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        if not _answer_v2c(self, datagram, address):
            super().datagram_received(datagram, address)


def _answer_v2c(transport: Any, datagram: bytes, address: Any) -> bool:
    """Answer (or drop) a v2c request; False for what the engine should have."""
    modem: SimulatedModem = transport.modem
    if modem.farm.v2c_via_engine:
        return False
    try:
        community, pdu = snmp_wire.decode_message(datagram)
    except (snmp_wire.Malformed, ValueError, IndexError):
        return False  # v1, v3, or not SNMP: the engine decides
    answer = _v2c_response(modem, community, pdu)
    if answer is not None:
        transport.transport.sendto(answer, address)
    return True


_WRITERS = frozenset({"rw", "rw-other"})  # the security names with a write view
_MAX_MESSAGE = 65507  # one UDP datagram (pysnmp's limit for a v2c answer too)
_BULK_VARBINDS = 64  # pysnmp's cap on a GETBULK answer


def _v2c_response(modem: SimulatedModem, community: bytes, pdu: snmp_wire.Pdu) -> bytes | None:
    """The Response to one v2c request, or None where a real CM stays silent (it does not
    answer, or the community is not one of its own)."""
    name = modem.farm.v2c_names.get(community)
    if modem.failure is Failure.TIMEOUT or name not in modem.farm.security_names(modem):
        return None
    try:
        if pdu.tag == snmp_wire.GET:
            var_binds = [(oid, _v2c_get(modem, oid)) for oid, _, _ in pdu.var_binds]
        elif pdu.tag == snmp_wire.GET_NEXT:
            var_binds = [_v2c_next(modem, oid) for oid, _, _ in pdu.var_binds]
        elif pdu.tag == snmp_wire.GET_BULK:
            var_binds = _v2c_bulk(modem, pdu)
        elif pdu.tag == snmp_wire.SET:
            var_binds = _v2c_set(modem, pdu, writable=name in _WRITERS)
        else:
            return None  # a Response sent to an agent
    except smi_error.SmiError as exc:
        status = cmdrsp.CommandResponderBase.SMI_ERROR_MAP.get(type(exc), "genErr")
        index = exc["idx"] + 1 if "idx" in exc else 1
        echo = [(oid, snmp_wire.encoded(tag, content)) for oid, tag, content in pdu.var_binds]
        return snmp_wire.response_message(
            community, pdu.request_id, echo, snmp_wire.ERROR_STATUSES.index(status), index
        )
    answer = snmp_wire.response_message(community, pdu.request_id, var_binds)
    if len(answer) > _MAX_MESSAGE:
        return snmp_wire.response_message(community, pdu.request_id, [], 1)  # tooBig
    return answer


def _v2c_get(modem: SimulatedModem, oid: Oid) -> bytes:
    value = modem.get(oid)
    if value is not None:
        return snmp_wire.encode_value(value)
    if _is_object(modem, oid):
        return snmp_wire.NO_SUCH_INSTANCE_VALUE
    return snmp_wire.NO_SUCH_OBJECT_VALUE


def _v2c_next(modem: SimulatedModem, oid: Oid) -> tuple[Oid, bytes]:
    found = modem.get_next(oid)
    if found is None:
        return oid, snmp_wire.END_OF_MIB_VIEW_VALUE
    return found[0], snmp_wire.encode_value(found[1])


def _v2c_bulk(modem: SimulatedModem, pdu: snmp_wire.Pdu) -> list[tuple[Oid, bytes]]:
    """RFC 3416 §4.2.3: the non-repeaters' successors, then up to max-repetitions rounds of
    the repeaters' (at most 64 varbinds, as pysnmp answers)."""
    oids = [oid for oid, _, _ in pdu.var_binds]
    non_repeaters = min(max(pdu.second, 0), len(oids))
    repeaters = oids[non_repeaters:]
    rounds = max(pdu.third, 0)
    if repeaters:
        rounds = min(rounds, _BULK_VARBINDS // len(repeaters))
    answer = [_v2c_next(modem, oid) for oid in oids[:non_repeaters]]
    for _ in range(rounds if repeaters else 0):
        row = [_v2c_next(modem, oid) for oid in repeaters]
        answer.extend(row)
        repeaters = [oid for oid, _ in row]
    return answer


_SMI_TYPES: dict[int, Callable[[Any], Any]] = {
    snmp_wire.INTEGER: v2c.Integer,
    snmp_wire.OCTET_STRING: v2c.OctetString,
    snmp_wire.OBJECT_IDENTIFIER: v2c.ObjectIdentifier,
    snmp_wire.IP_ADDRESS: v2c.IpAddress,
    snmp_wire.COUNTER32: v2c.Counter32,
    snmp_wire.GAUGE32: v2c.Gauge32,
    snmp_wire.TIMETICKS: v2c.TimeTicks,
    snmp_wire.OPAQUE: v2c.Opaque,
    snmp_wire.COUNTER64: v2c.Counter64,
}


def _smi_value(tag: int, content: bytes, oid: Oid, idx: int) -> Any:
    """A SET value as pysnmp's type of its tag (what the MIB checks compare against)."""
    kind = _SMI_TYPES.get(tag)
    if kind is None:
        raise smi_error.WrongTypeError(name=oid, idx=idx)
    try:
        return kind(snmp_wire.decode_value(tag, content))
    except (snmp_wire.Malformed, ValueError, TypeError) as exc:
        raise smi_error.WrongValueError(name=oid, idx=idx) from exc


def _v2c_set(
    modem: SimulatedModem, pdu: snmp_wire.Pdu, *, writable: bool
) -> list[tuple[Oid, bytes]]:
    """Apply a SET PDU whole or not at all; the values after it, as pysnmp echoes them."""
    if not writable:  # a read-only community: no write view
        raise smi_error.NoAccessError(name=pdu.var_binds[0][0] if pdu.var_binds else (), idx=0)
    values = [
        (oid, _smi_value(tag, content, oid, idx))
        for idx, (oid, tag, content) in enumerate(pdu.var_binds)
    ]
    for change in modem.check_pdu(values):
        change()
    return [(oid, snmp_wire.encode_value(_echo(modem, oid, value))) for oid, value in values]


def _echo(modem: SimulatedModem, name: Any, value: Any) -> Any:
    current = modem.get(tuple(name))
    return value if current is None else current


def _is_object(modem: SimulatedModem, oid: Oid) -> bool:
    """Whether ``oid`` names a column/scalar we implement (→ noSuchInstance, not Object)."""
    found = modem.get_next(oid[:-1])
    return found is not None and found[0][:-1] == oid[:-1]


class ModemFarm:
    """N simulated modems in one SNMP engine on one background event loop.

    ``distinct_addresses`` gives modem i its own 127.0.x.y address (so uploads come from
    distinct peers, as in the field); otherwise every modem is ``host`` (127.0.0.1, or ::1
    for IPv6 modems, which upload from 127.0.0.1) on its own port.
    ``tftp_port`` is where uploads go on the destination address set over SNMP (69 on a
    real plant; tests point it at a receiver bound to port 0). Uploads go to loopback
    destinations only, unless ``allow_remote``.
    ``measure_delay_s`` is seconds, or a (min, max) range drawn per measurement from
    ``seed`` (random when None; ``farm.seed`` says which, to repeat a run).
    """

    def __init__(
        self,
        count: int,
        *,
        measure_delay_s: Delay = 0.5,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        distinct_addresses: bool = False,
        community: str = "private",
        read_community: str = "public",
        v3_user: V3User | None = None,
        tftp_port: int = 69,
        upload_timeout_s: float = 2.0,
        upload_workers: int = 16,
        failures: dict[int, Failure] | None = None,
        allow_remote: bool = False,
        v2c_via_engine: bool = False,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if ":" in host and (host != "::1" or distinct_addresses):
            raise ValueError("the only IPv6 address a farm listens on is ::1 (one port per modem)")
        measure_delay_s = _check_delay(measure_delay_s)
        self.seed = secrets.randbits(32) if seed is None else seed
        self.community = community
        self.read_community = read_community
        self.alt_community = f"{community}-other"
        self.alt_read_community = f"{read_community}-other"
        # A community's security name, as the engine's community table maps it (below).
        self.v2c_names = {
            community.encode(): name
            for name, community in (
                ("rw", self.community),
                ("ro", self.read_community),
                ("rw-other", self.alt_community),
                ("ro-other", self.alt_read_community),
            )
        }
        self.v2c_via_engine = v2c_via_engine
        self.v3_user = v3_user or V3User()
        # pysnmp's default engine ID is the same for every engine of a process; a farm is
        # one agent (one engine ID), as a real modem is.
        self.engine_id = b"\x80\x00\x4f\xb8\x05" + secrets.token_bytes(8)
        self.tftp_port = tftp_port
        self.allow_remote = allow_remote
        self.upload_timeout_s = upload_timeout_s
        self.port = port
        failures = failures or {}
        self.modems = [
            SimulatedModem(
                self,
                index,
                _address(index) if distinct_addresses else host,
                measure_delay_s=measure_delay_s,
                failure=failures.get(index, Failure.NONE),
            )
            for index in range(count)
        ]
        self._by_domain: dict[Oid, SimulatedModem] = {}
        self.upload_workers = upload_workers
        self._uploader = ThreadPoolExecutor(upload_workers, thread_name_prefix="modem-upload")
        self._spool = tempfile.TemporaryDirectory(prefix="modem-farm-")
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop = asyncio.new_event_loop()
        self.engine: Any = None
        logging.getLogger("tftpy").setLevel(logging.WARNING)  # INFO per packet is 3x slower

    def __len__(self) -> int:
        return len(self.modems)

    def __getitem__(self, index: int) -> SimulatedModem:
        return self.modems[index]

    def __iter__(self) -> Iterator[SimulatedModem]:
        return iter(self.modems)

    def __enter__(self) -> ModemFarm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> ModemFarm:
        """Bind every modem's socket and answer SNMP on a background thread."""
        self._ensure_open_files()
        self._thread = threading.Thread(target=self._run, name="modem-farm", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("modem farm did not start in time")
        if self._error is not None:
            raise RuntimeError(f"modem farm failed to start: {self._error}") from self._error
        return self

    @property
    def open_files_needed(self) -> int:
        """One socket per modem, a socket and a spool file per upload worker, headroom."""
        return len(self.modems) + 2 * self.upload_workers + FD_HEADROOM

    def _ensure_open_files(self) -> None:
        """Raise the soft open-files limit to what the farm needs if the hard one allows
        (10,000 modems are 10,000 sockets); else refuse before binding any."""
        needed = self.open_files_needed
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY or needed <= soft:
            return
        if hard != resource.RLIM_INFINITY and needed > hard:
            raise RuntimeError(
                f"{len(self)} modems need {needed} open files; the limit is {hard} (ulimit -n)"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        log.info("open files limit raised from %d to %d for %d modems", soft, needed, len(self))

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self._uploader.shutdown(wait=True, cancel_futures=True)
        self._spool.cleanup()

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the farm's loop (where modem state lives) and return its value."""
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(fn, *args), self.loop)
        return future.result(10)

    def set_v3_user(self, user: V3User) -> None:
        """Replace the farm's SNMPv3 user (its keys, say) while it runs."""

        def swap() -> None:
            config.delete_v3_user(self.engine, self.v3_user.user)
            self.v3_user = user
            self._add_v3_user()

        self.call(swap)

    def _add_v3_user(self) -> None:
        user = self.v3_user
        config.add_v3_user(
            self.engine,
            user.user,
            AUTH_PROTOCOLS[user.auth_protocol.upper()],
            user.auth_key,
            PRIV_PROTOCOLS[user.priv_protocol.upper()] if user.priv_key else PRIV_PROTOCOLS["NONE"],
            user.priv_key or None,
        )
        everything = (1, 3, 6)
        config.add_vacm_user(self.engine, 3, user.user, user.security_level, everything, everything)

    def security_names(self, modem: SimulatedModem) -> frozenset[str]:
        if modem.failure is Failure.WRONG_COMMUNITY:
            return frozenset({"rw-other", "ro-other", self.v3_user.user})
        return frozenset({"rw", "ro", self.v3_user.user})

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self._setup()
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.engine.transport_dispatcher.job_finished(1)
            self.engine.close_dispatcher()
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def _setup(self) -> None:
        self.engine = snmp_engine.SnmpEngine(rfc1902.OctetString(self.engine_id))
        for modem in self.modems:
            # Each modem its own transport domain (and socket): IPv4, or IPv6 on ::1.
            family, domain_name, carrier = (
                (socket.AF_INET6, udp6.DOMAIN_NAME, _Udp6)
                if modem.ipv6
                else (socket.AF_INET, udp.DOMAIN_NAME, _Udp4)
            )
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.bind((modem.address, self.port))
            modem.port = sock.getsockname()[1]
            domain = (*domain_name, modem.index + 1)
            transport = carrier(loop=self.loop)
            transport.modem = modem
            transport.open_server_mode(sock=sock)
            config.add_transport(self.engine, domain, transport)
            self._by_domain[domain] = modem
        everything = (1, 3, 6)
        nothing = (0, 0)  # explicit: an empty write subtree lets anyone SET (pysnmp #48)
        for community, name in self.v2c_names.items():
            write = everything if name in _WRITERS else nothing
            config.add_v1_system(self.engine, name, community.decode())
            config.add_vacm_user(self.engine, 2, name, "noAuthNoPriv", everything, write)
        self._add_v3_user()
        snmp_context = context.SnmpContext(self.engine)
        snmp_context.unregister_context_name(b"")
        snmp_context.register_context_name(b"", _FarmController(self))
        for responder in (
            cmdrsp.GetCommandResponder,
            cmdrsp.NextCommandResponder,
            cmdrsp.BulkCommandResponder,
            cmdrsp.SetCommandResponder,
        ):
            responder(self.engine, snmp_context)
        self.engine.transport_dispatcher.job_started(1)

    # --- uploads ---------------------------------------------------------------------------
    def upload(
        self, modem: SimulatedModem, bulk_row: int, name: str, data: bytes, triggered_at: float
    ) -> None:
        """Send ``data`` to the modem's destination on the pool (called on the loop)."""
        host = modem.destination()
        remote = (modem.dest_path.decode("ascii", "replace") + name) if host else name
        truncated = modem.failure is Failure.TRUNCATED_UPLOAD
        future = self._uploader.submit(self._send, modem, host, remote, data, truncated)

        def done(fut: Any) -> None:
            if fut.cancelled():  # the farm stopped before this upload ran
                return
            error = fut.exception()
            record = Upload(
                file_name=name,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                triggered_at=triggered_at,
                sent_at=time.time(),
                ok=error is None and not truncated,
                error=str(error or ("truncated on purpose" if truncated else "")),
            )
            with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                self.loop.call_soon_threadsafe(modem.upload_finished, bulk_row, record)

        future.add_done_callback(done)

    def _send(
        self, modem: SimulatedModem, host: str | None, remote: str, data: bytes, truncated: bool
    ) -> None:
        if host is None:
            raise RuntimeError("no (loopback) bulk destination set")
        if truncated:
            send_truncated(
                host, self.tftp_port, remote, data, modem.upload_address, self.upload_timeout_s
            )
            return
        path = Path(self._spool.name) / f"{modem.index}-{time.monotonic_ns()}.bin"
        path.write_bytes(data)
        try:
            client = tftpy.TftpClient(host, self.tftp_port, localip=modem.upload_address)
            client.upload(remote, str(path), timeout=self.upload_timeout_s, retries=2)
        finally:
            path.unlink(missing_ok=True)


async def _as_coroutine(fn: Any, *args: Any) -> Any:
    return fn(*args)


def _address(index: int) -> str:
    """127.0.1.1 … 127.0.1.250, then 127.0.2.1 …: any 127/8 address binds without set-up."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


def send_truncated(
    host: str, port: int, name: str, data: bytes, local_ip: str, timeout_s: float
) -> int:
    """Upload half of ``data`` over TFTP, then abort with an ERROR packet; bytes sent.

    A raw lock-step writer, because the tftpy client cannot stop half way on purpose.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((local_ip, 0))
        sock.settimeout(timeout_s)
        sock.sendto(struct.pack("!H", 2) + name.encode() + b"\0octet\0", (host, port))
        reply, server = sock.recvfrom(1024)
        if struct.unpack("!H", reply[:2])[0] != 4:  # not an ACK: refused
            raise RuntimeError(f"upload refused: {reply[4:-1]!r}")
        half = data[: len(data) // 2]
        sent = 0
        for block, offset in enumerate(range(0, max(len(half) - 512, 0) + 1, 512), start=1):
            chunk = half[offset : offset + 512]
            if len(chunk) < 512:
                break  # a short block would end the transfer cleanly
            sock.sendto(struct.pack("!HH", 3, block) + chunk, server)
            sock.recvfrom(1024)
            sent += len(chunk)
        sock.sendto(struct.pack("!HH", 5, 0) + b"aborted by modem\0", server)
        return sent


def _check_delay(delay: Delay) -> Delay:
    if isinstance(delay, tuple):
        low, high = delay
        if not 0 <= low <= high:
            raise ValueError(f"measure_delay_s range must be 0 <= min <= max, got {delay}")
        return (float(low), float(high))
    if delay < 0:
        raise ValueError(f"measure_delay_s must be >= 0, got {delay}")
    return delay


def parse_delay(value: str) -> Delay:
    """``SECONDS`` or ``MIN,MAX`` (``simulate_modems --delay``) as a measurement delay."""
    low, comma, high = value.partition(",")
    return _check_delay((float(low), float(high)) if comma else float(low))


def parse_failures(values: list[str]) -> dict[int, Failure]:
    """``INDEX=MODE`` options (``simulate_modems --failure``) as a failure per modem."""
    failures = {}
    for value in values:
        index, _, mode = value.partition("=")
        failures[int(index)] = Failure(mode)
    return failures


def describe(farm: ModemFarm) -> list[str]:
    """One line per modem: index, address:port, MAC, failure mode (no communities)."""
    return [
        f"modem {m.index} {m.address}:{m.port} mac={m.mac} failure={m.failure.value}" for m in farm
    ]
