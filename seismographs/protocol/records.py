"""What a unit reports, as dataclasses, and the byte layouts both the client and the
simulator use for them. Plain Python (+ numpy for waveforms), no I/O.

Layouts follow the public notes where they are known (0C is 210 bytes with the peak vector
sum as float32 BE at offset 87, 1C is 58 bytes when idle with battery/memory counted from
the end while monitoring, keys are 4 bytes, 1E/1F give key4 + data8); the rest is our
documented stand-in, see docs/architecture.md "Seismograph link and simulator".
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from dataclasses import dataclass, field

import numpy as np

from seismographs.protocol.errors import ProtocolError

CHANNELS = ("Tran", "Vert", "Long", "MicL")
GEO_CHANNELS = CHANNELS[:3]
SAMPLE_RATES = (1024, 2048, 4096)
MAX_RECORD_TIME_S = 60.0
TEXT_LEN = 23  # every project string field, in bytes (ASCII, NUL padded)
MIC_RANGE_PSI = 0.1  # MicL full scale; counts x range / 32767 like the geophones
MIC_REF_PSI = 2.9e-9  # 20 uPa, the dB(L) reference
FREQ_CAP_HZ = 100.0  # ZC frequencies above are reported as 100 + "above range"
RECORD_TYPES = {0x10: "waveform", 0x03: "waveform_continuous", 0x2C: "monitor_log"}
HEADER_RECORD_LEN = 0xD2
IDENTITY_LEN = 0x98
SERIAL_LEN = 0x0A
STATUS_IDLE_LEN = 58
STATUS_MONITORING_LEN = 42
STATUS_IDLE_FLAG = 0x2C
WALK_ENTRY_LEN = 12
UTC = dt.UTC


def _text(value: str) -> bytes:
    raw = value.encode("ascii", "replace")[:TEXT_LEN]
    return raw.ljust(TEXT_LEN, b"\0")


def _untext(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def _need(data: bytes, size: int, what: str) -> None:
    if len(data) < size:
        raise ProtocolError(f"{what}: {len(data)} bytes, expected {size}")


def key_hex(key: int) -> str:
    """Waveform keys are shown the way seismo-relay shows them: 8 upper-case hex digits."""
    return f"{key:08X}"


@dataclass(frozen=True)
class Identity:
    """Who the unit is (SUB 15 serial + SUB 01 full config)."""

    serial: str
    firmware: str
    model: str
    calibration_date: dt.date


@dataclass(frozen=True)
class ProjectInfo:
    """Project strings. Events carry the ones in force when they were recorded."""

    project: str = ""
    client: str = ""
    user_name: str = ""
    seis_loc: str = ""
    notes: str = ""

    def encode(self) -> bytes:
        return b"".join(
            _text(v) for v in (self.project, self.client, self.user_name, self.seis_loc, self.notes)
        )

    @classmethod
    def decode(cls, raw: bytes) -> ProjectInfo:
        _need(raw, 5 * TEXT_LEN, "project strings")
        parts = [_untext(raw[i * TEXT_LEN : (i + 1) * TEXT_LEN]) for i in range(5)]
        return cls(*parts)


@dataclass(frozen=True)
class DeviceConfig:
    """Compliance config (SUB 1A read, 68/73 write). ``revision`` is the unit's write
    counter: read-only, ignored when writing."""

    sample_rate: int = 1024
    record_time_s: float = 3.0
    pre_trigger_s: float = 0.25
    trigger_level_geo: float = 0.5
    alarm_level_geo: float = 1.0
    max_range_geo: float = 10.0
    project: ProjectInfo = field(default_factory=ProjectInfo)
    revision: int = 0

    _FMT = ">HfffffI"

    def errors(self) -> dict[str, str]:
        """Field → message for values the unit would reject (empty when valid)."""
        found: dict[str, str] = {}
        if self.sample_rate not in SAMPLE_RATES:
            found["sample_rate"] = f"must be one of {SAMPLE_RATES}"
        if not 0 < self.record_time_s <= MAX_RECORD_TIME_S:
            found["record_time_s"] = f"must be > 0 and <= {MAX_RECORD_TIME_S:g}"
        if not 0 <= self.pre_trigger_s < self.record_time_s:
            found["pre_trigger_s"] = "must be >= 0 and shorter than record_time_s"
        if not 0 < self.trigger_level_geo <= self.max_range_geo:
            found["trigger_level_geo"] = "must be > 0 and <= max_range_geo"
        if not 0 < self.alarm_level_geo <= self.max_range_geo:
            found["alarm_level_geo"] = "must be > 0 and <= max_range_geo"
        if self.max_range_geo <= 0:
            found["max_range_geo"] = "must be > 0"
        for name in ("project", "client", "user_name", "seis_loc", "notes"):
            value = getattr(self.project, name)
            if len(value) > TEXT_LEN or not value.isascii():
                found[name] = f"at most {TEXT_LEN} ASCII characters"
        return found

    def encode(self) -> bytes:
        numbers = struct.pack(
            self._FMT,
            self.sample_rate,
            self.record_time_s,
            self.pre_trigger_s,
            self.trigger_level_geo,
            self.alarm_level_geo,
            self.max_range_geo,
            self.revision,
        )
        return numbers + self.project.encode()

    @classmethod
    def decode(cls, raw: bytes) -> DeviceConfig:
        size = struct.calcsize(cls._FMT)
        _need(raw, size + 5 * TEXT_LEN, "config")
        rate, rec, pre, trig, alarm, rng, rev = struct.unpack(cls._FMT, raw[:size])
        return cls(
            sample_rate=rate,
            record_time_s=round(rec, 4),
            pre_trigger_s=round(pre, 4),
            trigger_level_geo=round(trig, 4),
            alarm_level_geo=round(alarm, 4),
            max_range_geo=round(rng, 4),
            project=ProjectInfo.decode(raw[size:]),
            revision=rev,
        )


CONFIG_LEN = struct.calcsize(DeviceConfig._FMT) + 5 * TEXT_LEN


def encode_identity_block(identity: Identity) -> bytes:
    """SUB 01 full config (152 B): firmware, model, calibration date; zero padded."""
    cal = identity.calibration_date
    raw = (
        identity.firmware.encode("ascii")[:16].ljust(16, b"\0")
        + identity.model.encode("ascii")[:16].ljust(16, b"\0")
        + struct.pack(">HBB", cal.year, cal.month, cal.day)
    )
    return raw.ljust(IDENTITY_LEN, b"\0")


def decode_identity(serial_block: bytes, identity_block: bytes) -> Identity:
    _need(serial_block, SERIAL_LEN, "serial number")
    _need(identity_block, IDENTITY_LEN, "identity")
    year, month, day = struct.unpack(">HBB", identity_block[32:36])
    try:
        cal = dt.date(year, month, day)
    except ValueError as exc:
        raise ProtocolError(f"bad calibration date {year}-{month}-{day}") from exc
    return Identity(
        serial=_untext(serial_block[:SERIAL_LEN]),
        firmware=_untext(identity_block[:16]),
        model=_untext(identity_block[16:32]),
        calibration_date=cal,
    )


@dataclass(frozen=True)
class ChannelPeak:
    """One channel's results: PPV (in/s; psi for MicL), zero-crossing frequency (capped
    at 100 Hz with ``above_range``) and time of peak relative to the trigger."""

    ppv: float
    freq_hz: float
    above_range: bool
    time_of_peak_s: float


@dataclass(frozen=True)
class EventKey:
    """One step of the 1E/1F walk."""

    index: int
    waveform_key: str


@dataclass(frozen=True)
class EventHeader:
    """An event as the 0C record describes it. (waveform_key, timestamp) identifies it:
    keys are reused after an erase, timestamps are not."""

    index: int
    waveform_key: str
    timestamp: dt.datetime
    record_type: str
    sample_rate: int
    record_time_s: float
    pre_trigger_s: float
    geo_range: float
    sample_count: int
    peaks: dict[str, ChannelPeak]
    peak_vector_sum: float
    mic_db: float
    project: ProjectInfo

    @property
    def waveform_bytes(self) -> int:
        return self.sample_count * len(CHANNELS) * 2


_TS_FMT = ">HBBBBBH"  # year, month, day, hour, minute, second, hundredths: 9 bytes
_PEAK_FMT = ">ffBf"


def encode_timestamp(ts: dt.datetime) -> bytes:
    ts = ts.astimezone(UTC)
    return struct.pack(
        _TS_FMT, ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond // 10000
    )


def decode_timestamp(raw: bytes) -> dt.datetime:
    year, month, day, hour, minute, second, hundredths = struct.unpack(_TS_FMT, raw[:9])
    try:
        return dt.datetime(year, month, day, hour, minute, second, hundredths * 10000, tzinfo=UTC)
    except ValueError as exc:
        raise ProtocolError(f"bad timestamp {raw[:9].hex()}") from exc


def encode_header_record(header: EventHeader) -> bytes:
    """The 210-byte 0C record. PVS sits at offset 87 as in the public notes."""
    code = {v: k for k, v in RECORD_TYPES.items()}[header.record_type]
    raw = bytearray(HEADER_RECORD_LEN)
    raw[0] = code
    raw[1:5] = int(header.waveform_key, 16).to_bytes(4, "big")
    raw[5:14] = encode_timestamp(header.timestamp)
    raw[14:28] = struct.pack(
        ">Hfff", header.sample_rate, header.record_time_s, header.pre_trigger_s, header.geo_range
    )
    pos = 28
    for name in CHANNELS:
        p = header.peaks[name]
        raw[pos : pos + 13] = struct.pack(
            _PEAK_FMT, p.ppv, p.freq_hz, p.above_range, p.time_of_peak_s
        )
        pos += 13
    raw[82:86] = struct.pack(">f", header.mic_db)
    raw[87:91] = struct.pack(">f", header.peak_vector_sum)
    raw[91:95] = struct.pack(">I", header.sample_count)
    raw[95 : 95 + 5 * TEXT_LEN] = header.project.encode()
    if len(raw) != HEADER_RECORD_LEN:
        raise ValueError(f"0C record came out {len(raw)} bytes")
    return bytes(raw)


def decode_header_record(index: int, raw: bytes) -> EventHeader:
    _need(raw, HEADER_RECORD_LEN, "0C event record")
    record_type = RECORD_TYPES.get(raw[0])
    if record_type is None:
        raise ProtocolError(f"unknown record type {raw[0]:02X}")
    rate, rec, pre, rng = struct.unpack(">Hfff", raw[14:28])
    peaks = {}
    for i, name in enumerate(CHANNELS):
        ppv, freq, above, top = struct.unpack(_PEAK_FMT, raw[28 + 13 * i : 41 + 13 * i])
        peaks[name] = ChannelPeak(round(ppv, 6), round(freq, 3), bool(above), round(top, 6))
    return EventHeader(
        index=index,
        waveform_key=key_hex(int.from_bytes(raw[1:5], "big")),
        timestamp=decode_timestamp(raw[5:14]),
        record_type=record_type,
        sample_rate=rate,
        record_time_s=round(rec, 4),
        pre_trigger_s=round(pre, 4),
        geo_range=round(rng, 4),
        sample_count=struct.unpack(">I", raw[91:95])[0],
        peaks=peaks,
        peak_vector_sum=round(struct.unpack(">f", raw[87:91])[0], 6),
        mic_db=round(struct.unpack(">f", raw[82:86])[0], 3),
        project=ProjectInfo.decode(raw[95:]),
    )


@dataclass(frozen=True)
class WaveformInfo:
    """SUB 0A waveform header (variable length: ends with the project name)."""

    waveform_key: str
    sample_count: int
    sample_rate: int
    total_bytes: int
    project: str

    def encode(self) -> bytes:
        fixed = struct.pack(
            ">IIHBI",
            int(self.waveform_key, 16),
            self.sample_count,
            self.sample_rate,
            len(CHANNELS),
            self.total_bytes,
        )
        return fixed + self.project.encode("ascii", "replace")[:TEXT_LEN]

    @classmethod
    def decode(cls, raw: bytes) -> WaveformInfo:
        _need(raw, 15, "0A waveform header")
        key, count, rate, channels, total = struct.unpack(">IIHBI", raw[:15])
        if channels != len(CHANNELS) or total != count * channels * 2:
            raise ProtocolError(f"0A header: {channels} channels, {total} bytes for {count}")
        return cls(key_hex(key), count, rate, total, raw[15:].decode("ascii", "replace"))


@dataclass(frozen=True)
class Waveform:
    """A complete 5A download: ``raw`` is the body as streamed (int16 BE sample sets,
    Tran/Vert/Long/MicL interleaved) so it can be decoded again later."""

    index: int
    waveform_key: str
    timestamp: dt.datetime
    sample_rate: int
    pre_trigger_s: float
    geo_range: float
    raw: bytes
    chunks: int
    channels: tuple[str, ...] = CHANNELS

    @property
    def sample_count(self) -> int:
        return len(self.raw) // (2 * len(self.channels))

    def counts(self) -> np.ndarray:
        """ADC counts, shape (samples, channels), int16."""
        return np.frombuffer(self.raw, dtype=">i2").reshape(-1, len(self.channels)).astype(np.int16)

    def physical(self) -> dict[str, np.ndarray]:
        """Per channel in physical units: in/s for geophones, psi for MicL."""
        return counts_to_physical(self.counts(), self.geo_range)


def counts_to_physical(counts: np.ndarray, geo_range: float) -> dict[str, np.ndarray]:
    scale = [geo_range] * len(GEO_CHANNELS) + [MIC_RANGE_PSI]
    return {name: counts[:, i] * (scale[i] / 32767.0) for i, name in enumerate(CHANNELS)}


def _zero_crossing_freq(values: np.ndarray, at: int, sample_rate: int) -> float:
    """Frequency from the half-cycle that holds the peak: the zero crossings around it."""
    crossings = np.flatnonzero(np.diff(np.signbit(values)))
    after = int(np.searchsorted(crossings, at))
    if after == 0 or after >= len(crossings):
        return 0.0
    half_cycle = int(crossings[after] - crossings[after - 1])
    return sample_rate / (2 * half_cycle)


def compute_peaks(
    counts: np.ndarray, sample_rate: int, pre_trigger_s: float, geo_range: float
) -> tuple[dict[str, ChannelPeak], float, float]:
    """Per-channel peaks, the peak vector sum and mic dB(L) from ADC counts, the way the
    unit computes them at record time (so header and waveform can be checked together)."""
    phys = counts_to_physical(counts, geo_range)
    peaks = {}
    for name, values in phys.items():
        at = int(np.argmax(np.abs(values)))
        freq = _zero_crossing_freq(values, at, sample_rate)
        above = freq > FREQ_CAP_HZ
        peaks[name] = ChannelPeak(
            ppv=round(float(abs(values[at])), 6),
            freq_hz=round(min(freq, FREQ_CAP_HZ), 3),
            above_range=above,
            time_of_peak_s=round(at / sample_rate - pre_trigger_s, 6),
        )
    geo = np.stack([phys[name] for name in GEO_CHANNELS])
    pvs = round(float(np.sqrt((geo**2).sum(axis=0)).max()), 6)
    mic = peaks["MicL"].ppv
    mic_db = round(20 * math.log10(mic / MIC_REF_PSI), 3) if mic > 0 else 0.0
    return peaks, pvs, mic_db


@dataclass(frozen=True)
class MonitorStatus:
    """SUB 1C: mode, device clock, battery (V), memory (bytes)."""

    monitoring: bool
    starting: bool
    clock: dt.datetime
    battery_v: float
    memory_total: int
    memory_free: int

    def encode(self) -> bytes:
        clock = struct.pack(
            ">HBBBBB",
            self.clock.year,
            self.clock.month,
            self.clock.day,
            self.clock.hour,
            self.clock.minute,
            self.clock.second,
        )
        tail = struct.pack(">HII", round(self.battery_v * 100), self.memory_total, self.memory_free)
        if self.monitoring:
            return (bytes((0x00, 0)) + clock).ljust(STATUS_MONITORING_LEN - len(tail), b"\0") + tail
        head = bytes((STATUS_IDLE_FLAG, int(self.starting))) + clock + tail
        return head.ljust(STATUS_IDLE_LEN, b"\0")

    @classmethod
    def decode(cls, raw: bytes) -> MonitorStatus:
        _need(raw, 20, "1C status")
        idle = raw[0] == STATUS_IDLE_FLAG
        year, month, day, hour, minute, second = struct.unpack(">HBBBBB", raw[2:9])
        # While monitoring the layout shrinks; battery and memory are counted from the end.
        tail = raw[9:19] if idle else raw[-10:]
        battery, total, free = struct.unpack(">HII", tail)
        try:
            clock = dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError as exc:
            raise ProtocolError(f"bad device clock {raw[2:9].hex()}") from exc
        return cls(
            monitoring=not idle,
            starting=idle and bool(raw[1]),
            clock=clock,
            battery_v=battery / 100,
            memory_total=total,
            memory_free=free,
        )


def encode_walk_entry(key: int, timestamp: dt.datetime | None, size: int) -> bytes:
    """1E/1F reply: key4 + data8. data8 = seconds since 1995 (uint32) + event size; the
    walk ends when data8's last 4 bytes are zero, never on a zero key."""
    secs = (
        0
        if timestamp is None
        else int((timestamp - dt.datetime(1995, 1, 1, tzinfo=UTC)).total_seconds())
    )
    return struct.pack(">III", key, secs, size)


def decode_walk_entry(raw: bytes) -> tuple[int, bool]:
    """(key, is_end) from a 1E/1F reply."""
    _need(raw, WALK_ENTRY_LEN, "1E/1F walk entry")
    key, _secs, size = struct.unpack(">III", raw[:WALK_ENTRY_LEN])
    return key, size == 0
