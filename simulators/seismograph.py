"""A simulated MiniMate Plus seismograph speaking the same framed protocol as the real unit,
over TCP (the modem path, ``socket://``) or a pty (the serial path).

``SimulatedUnit`` is the device: its state and its answer to each request frame, no I/O.
``SeismographSimulator`` puts one unit on one link and adds what only a link can do:
RING/CONNECT on connect, one connection at a time, refused vs silent, a wedged unit.
Delays follow a link model (modem connect, per-command latency, 38400 baud) multiplied by
``time_scale``: 1.0 is realistic (a ~2 s probe, a 20-35 s download), 0 runs as fast as
the machine allows. Control methods are thread-safe, for tests and the demo.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import select
import socket
import struct
import threading
import time
import tty
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from seismographs.protocol import commands as sub
from seismographs.protocol.errors import ChecksumError, ProtocolError
from seismographs.protocol.framing import (
    FLAG_REJECTED,
    REQUEST_START,
    Frame,
    FrameReader,
    build_reply,
    reply_sub,
)
from seismographs.protocol.records import (
    CHANNELS,
    UTC,
    DeviceConfig,
    EventHeader,
    Identity,
    MonitorStatus,
    WaveformInfo,
    compute_peaks,
    encode_header_record,
    encode_identity_block,
    encode_walk_entry,
    key_hex,
)
from seismographs.protocol.transport import LinkTarget

FIRST_KEY = 0x01110000  # the key counter's start, and where it restarts after an erase
MEMORY_TOTAL = 983_026
EVENT_OVERHEAD = 1024  # bytes of memory per event beyond its samples (header, histogram)
CHUNK_BYTES = 2128  # 35 chunks for a 9,306-sample event, as observed
END_OF_STREAM = b"\x03"  # the single raw byte a unit sends after its last 5A chunk
RING_CONNECT = b"\r\nRING\r\n\r\nCONNECT\r\n"
BOOT_BANNER = b"Operating System\r\n"
NO_CARRIER = b"\r\nNO CARRIER\r\n"
_POLL_S = 0.05  # how often I/O threads look at the stop flag


@dataclass(frozen=True)
class LinkTiming:
    """Real-world link timing in seconds, before ``time_scale``."""

    connect_s: float = 1.5  # modem answer + 1 s forwarding buffer, paid by the first POLL
    command_s: float = 0.1  # per request/reply turnaround
    byte_rate: float = 3840.0  # 38400 baud 8N1
    config_write_s: float = 2.0
    monitor_start_s: float = 40.0  # sensor check before monitoring is confirmed
    redial_s: float = 30.0  # a wedged unit's call-home loop drops inbound sessions this often


@dataclass
class Faults:
    """Failure injection. ``refused``/``silent``/``wedged`` last until cleared;
    ``checksum_frame`` (1-based count of reply frames from now), ``drop_chunk`` and
    ``end_early_chunk`` (0-based 5A chunks) fire once, so a retry succeeds."""

    refused: bool = False
    silent: bool = False
    wedged: bool = False
    checksum_frame: int | None = None
    drop_chunk: int | None = None
    end_early_chunk: int | None = None  # send the end-of-stream byte instead of this chunk
    garbage: int = 0  # noise bytes sent before every reply


@dataclass(eq=False)
class SimEvent:
    """One recorded event. Settings and project strings are frozen at record time."""

    key: int
    timestamp: dt.datetime
    config: DeviceConfig
    serial: str

    @property
    def sample_count(self) -> int:
        return round(self.config.sample_rate * self.config.record_time_s)

    @property
    def size(self) -> int:
        return self.sample_count * len(CHANNELS) * 2 + EVENT_OVERHEAD

    @cached_property
    def counts(self) -> np.ndarray:
        """Deterministic from (serial, key, timestamp): decaying bursts after the
        pre-trigger plus ~10 counts of noise, int16, shape (samples, 4)."""
        seed = zlib.crc32(
            f"{self.serial}:{key_hex(self.key)}:{self.timestamp.isoformat()}".encode()
        )
        rng = np.random.default_rng(seed)
        rate = self.config.sample_rate
        n = self.sample_count
        t = np.arange(n) / rate - self.config.pre_trigger_s
        out = rng.integers(-10, 11, size=(n, len(CHANNELS))).astype(np.float64)
        for ch in range(len(CHANNELS)):
            amplitude = rng.uniform(2000, 20000)
            freq = rng.uniform(6.0, 80.0)
            burst = amplitude * np.exp(-np.clip(t, 0, None) / rng.uniform(0.2, 1.0))
            out[:, ch] += np.where(t >= 0, burst * np.sin(2 * np.pi * freq * t), 0.0)
        return np.clip(np.rint(out), -32767, 32767).astype(np.int16)

    @cached_property
    def body(self) -> bytes:
        return self.counts.astype(">i2").tobytes()

    def header(self, index: int, key: int) -> EventHeader:
        peaks, pvs, mic_db = compute_peaks(
            self.counts,
            self.config.sample_rate,
            self.config.pre_trigger_s,
            self.config.max_range_geo,
        )
        return EventHeader(
            index=index,
            waveform_key=key_hex(key),
            timestamp=self.timestamp,
            record_type="waveform",
            sample_rate=self.config.sample_rate,
            record_time_s=self.config.record_time_s,
            pre_trigger_s=self.config.pre_trigger_s,
            geo_range=self.config.max_range_geo,
            sample_count=self.sample_count,
            peaks=peaks,
            peak_vector_sum=pvs,
            mic_db=mic_db,
            project=self.config.project,
        )


@dataclass
class Reply:
    """What to send for one request: bytes after a delay; ``drop`` ends the link after."""

    data: bytes
    delay_s: float
    drop: bool = False


@dataclass
class Session:
    """Per-connection state: staged two-step answers, an armed erase, a staged config."""

    pending: dict[tuple[int, bytes], bytes] = field(default_factory=dict)
    erase_armed: bool = False
    staged_config: DeviceConfig | None = None
    polled: bool = False


class SimulatedUnit:
    """The device state and protocol engine. Every public method is thread-safe."""

    def __init__(
        self,
        serial: str = "BE18189",
        *,
        firmware: str = "S338.17",
        model: str = "MiniMate Plus",
        calibration_date: dt.date = dt.date(2025, 3, 14),
        config: DeviceConfig | None = None,
        events: int = 0,
        time_scale: float = 1.0,
        timing: LinkTiming | None = None,
        memory_total: int = MEMORY_TOTAL,
        battery_v: float = 6.8,
        zero_first_key: bool = False,
        boot_banner: bool = True,
    ) -> None:
        self.identity = Identity(serial, firmware, model, calibration_date)
        self.config = config or DeviceConfig()
        self.time_scale = time_scale
        self.timing = timing or LinkTiming()
        self.memory_total = memory_total
        self.battery_v = battery_v
        self.zero_first_key = zero_first_key
        self.faults = Faults()
        self.sessions = 0
        self.command_counts: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._events: list[SimEvent] = []
        self._next_key = FIRST_KEY
        self._last_ts: dt.datetime | None = None
        self._monitor_since: float | None = None
        self._banner_pending = boot_banner
        self._frames_sent = 0
        self.record_events(events)

    # -- control (tests, demo) ---------------------------------------------------------------

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    @property
    def memory_free(self) -> int:
        with self._lock:
            return self.memory_total - sum(e.size for e in self._events)

    @property
    def event_count(self) -> int:
        with self._lock:
            return len(self._events)

    def events(self) -> list[EventHeader]:
        """What the unit holds now, as headers (index, key, timestamp, peaks, project)."""
        with self._lock:
            return [e.header(i, self._key_at(i)) for i, e in enumerate(self._events)]

    def waveform_body(self, index: int) -> bytes:
        with self._lock:
            return self._events[index].body

    def record_event(self, timestamp: dt.datetime | None = None) -> EventHeader | None:
        """Record one event with the current config; ``None`` when memory is full (the unit
        stops recording). Timestamps never repeat, even across an erase."""
        with self._lock:
            ts = (timestamp or self.now()).replace(microsecond=0)
            if self._last_ts is not None and ts <= self._last_ts:
                ts = self._last_ts + dt.timedelta(seconds=1)
            event = SimEvent(self._next_key, ts, self.config, self.identity.serial)
            if event.size > self.memory_free:
                return None
            self._events.append(event)
            self._next_key += event.size
            self._last_ts = ts
            index = len(self._events) - 1
            return event.header(index, self._key_at(index))

    def record_events(self, n: int) -> list[EventHeader]:
        return [h for h in (self.record_event() for _ in range(n)) if h is not None]

    def erase(self) -> None:
        """Erase all events (also what Blastware does behind our back): memory is freed and
        the key counter restarts at 0x01110000, so old keys come back."""
        with self._lock:
            self._events.clear()
            self._next_key = FIRST_KEY

    def erase_and_rerecord(self, n: int | None = None) -> list[EventHeader]:
        """Erase, then record ``n`` events (default: as many as before). Same count, same
        keys, new timestamps: the case a count-only cache gets wrong."""
        with self._lock:
            n = len(self._events) if n is None else n
            self.erase()
            return self.record_events(n)

    def change_config(self, **fields: Any) -> DeviceConfig:
        """Change the config as if from the keypad; the revision goes up."""
        with self._lock:
            self.config = replace(self.config, **fields, revision=self.config.revision + 1)
            return self.config

    def set_fault(self, **changes: Any) -> None:
        """e.g. ``set_fault(checksum_frame=3)``, ``set_fault(refused=True)``."""
        with self._lock:
            self.faults = replace(self.faults, **changes)
            if "checksum_frame" in changes:
                self._frames_sent = 0

    def clear_faults(self) -> None:
        with self._lock:
            self.faults = Faults()

    def reboot(self) -> None:
        """The next reply is preceded by the boot banner; monitoring stops."""
        with self._lock:
            self._banner_pending = True
            self._monitor_since = None

    # -- protocol engine -------------------------------------------------------------------

    def _key_at(self, index: int) -> int:
        return 0 if index == 0 and self.zero_first_key else self._events[index].key

    def _index_of(self, key: int) -> int | None:
        for i in range(len(self._events)):
            if self._key_at(i) == key:
                return i
        return None

    def status(self) -> MonitorStatus:
        with self._lock:
            since = self._monitor_since
            elapsed = None if since is None else time.monotonic() - since
            confirmed = elapsed is not None and elapsed >= self.scaled(self.timing.monitor_start_s)
            return MonitorStatus(
                monitoring=confirmed,
                starting=elapsed is not None and not confirmed,
                clock=self.now().replace(microsecond=0),
                battery_v=self.battery_v,
                memory_total=self.memory_total,
                memory_free=self.memory_free,
            )

    def handle(self, session: Session, request: Frame) -> Reply:
        """The answer to one request frame."""
        with self._lock:
            self.command_counts[f"{request.sub:02X}"] += 1
            delay = self.timing.command_s
            if request.sub == sub.POLL and not session.polled:
                session.polled = True
                self.sessions += 1
                self.battery_v = max(5.0, round(self.battery_v - 0.01, 2))
                delay += self.timing.connect_s
            elif request.sub == sub.CONFIG_WRITE:
                delay += self.timing.config_write_s
            if request.sub == sub.STREAM:
                return self._stream(request, delay)
            try:
                data, length = self._answer(session, request)
                frame = build_reply(reply_sub(request.sub), data, length=length)
            except _Rejected as exc:
                frame = build_reply(reply_sub(request.sub), str(exc).encode(), flags=FLAG_REJECTED)
            return Reply(
                self._decorate(frame), self.scaled(delay + len(frame) / self.timing.byte_rate)
            )

    def _decorate(self, frame: bytes) -> bytes:
        """Apply the checksum fault and prepend banner/noise."""
        self._frames_sent += 1
        if self.faults.checksum_frame == self._frames_sent:
            self.faults = replace(self.faults, checksum_frame=None)
            frame = _corrupt_checksum(frame)
        prefix = b""
        if self._banner_pending:
            self._banner_pending = False
            prefix += BOOT_BANNER
        if self.faults.garbage:
            prefix += bytes(0x20 + (i * 37) % 0x5F for i in range(self.faults.garbage))
        return prefix + frame

    def _two_step(
        self, session: Session, request: Frame, make: Callable[[], bytes]
    ) -> tuple[bytes, int | None]:
        """Probe (LEN 0) → announce the size and stage the data; fetch → send it."""
        slot = (request.sub, request.data)
        if request.length == 0:
            session.pending[slot] = make()
            return b"", len(session.pending[slot])
        data = session.pending.pop(slot, None)
        if data is None:
            data = make()
        if len(data) != request.length:
            raise _Rejected(f"length {request.length} != {len(data)}")
        return data, None

    def _event_for(self, params: bytes) -> tuple[int, SimEvent]:
        if len(params) < 4:
            raise _Rejected("missing key")
        index = self._index_of(int.from_bytes(params[:4], "big"))
        if index is None:
            raise _Rejected("no such key")
        return index, self._events[index]

    def _walk_entry(self, index: int) -> bytes:
        if index >= len(self._events):
            return encode_walk_entry(0, None, 0)
        event = self._events[index]
        return encode_walk_entry(self._key_at(index), event.timestamp, event.size)

    def _answer(self, session: Session, request: Frame) -> tuple[bytes, int | None]:
        code, params = request.sub, request.data
        if code == sub.POLL:
            return b"", None
        if code == sub.SERIAL:
            return self._two_step(
                session, request, lambda: self.identity.serial.encode().ljust(10, b"\0")
            )
        if code == sub.IDENTITY:
            return self._two_step(session, request, lambda: encode_identity_block(self.identity))
        if code == sub.CONFIG_READ:
            return self._two_step(session, request, self.config.encode)
        if code == sub.CONFIG_WRITE:
            return self._stage_config(session, params), None
        if code == sub.CONFIG_COMMIT:
            if session.staged_config is None:
                raise _Rejected("nothing staged")
            self.config = replace(session.staged_config, revision=self.config.revision + 1)
            session.staged_config = None
            return struct.pack(">I", self.config.revision), None
        if code == sub.WALK_FIRST:
            return self._walk_entry(0), None
        if code == sub.WALK_NEXT:
            index, _ = self._event_for(params)
            return self._walk_entry(index + 1), None
        if code == sub.WAVEFORM_HEADER:
            index, event = self._event_for(params)
            info = WaveformInfo(
                key_hex(self._key_at(index)),
                event.sample_count,
                event.config.sample_rate,
                event.sample_count * len(CHANNELS) * 2,
                event.config.project.project,
            )
            return self._two_step(session, request, info.encode)
        if code == sub.EVENT_RECORD:
            index, event = self._event_for(params)
            return self._two_step(
                session,
                request,
                lambda: encode_header_record(event.header(index, self._key_at(index))),
            )
        if code == sub.MONITOR_STATUS:
            return self._two_step(session, request, lambda: self.status().encode())
        if code == sub.MONITOR_START:
            if self._monitor_since is None:
                self._monitor_since = time.monotonic()
            return b"", None
        if code == sub.MONITOR_STOP:
            self._monitor_since = None
            return b"", None
        if code == sub.STORAGE_RANGE:
            return self._two_step(session, request, self._storage_range)
        if code == sub.ERASE_BEGIN:
            session.erase_armed = True
            return b"", None
        if code == sub.ERASE_CONFIRM:
            if not session.erase_armed:
                raise _Rejected("erase not begun")
            session.erase_armed = False
            self.erase()
            return b"", None
        raise _Rejected(f"unknown command {code:02X}")

    def _stage_config(self, session: Session, params: bytes) -> bytes:
        try:
            config = DeviceConfig.decode(params)
        except ProtocolError as exc:
            raise _Rejected(str(exc)) from exc
        problems = config.errors()
        if problems:
            raise _Rejected("; ".join(f"{k}: {v}" for k, v in sorted(problems.items())))
        session.staged_config = config
        return b""

    def _storage_range(self) -> bytes:
        first = self._key_at(0) if self._events else 0
        last = self._key_at(len(self._events) - 1) if self._events else 0
        return bytes(28) + struct.pack(">II", first, last)

    def _stream(self, request: Frame, delay: float) -> Reply:
        """5A: chunk number = counter / 0x0400; past the end, one raw byte and silence."""
        reply = reply_sub(sub.STREAM)
        try:
            _, event = self._event_for(request.data)
        except _Rejected as exc:
            frame = build_reply(reply, str(exc).encode(), flags=FLAG_REJECTED)
            return Reply(self._decorate(frame), self.scaled(delay))
        counter = int.from_bytes(request.data[4:8], "big")
        chunk = counter // sub.STREAM_COUNTER_STEP
        data = event.body[chunk * CHUNK_BYTES : (chunk + 1) * CHUNK_BYTES]
        if self.faults.end_early_chunk == chunk:
            self.faults = replace(self.faults, end_early_chunk=None)
            data = b""
        if not data:
            return Reply(END_OF_STREAM, self.scaled(delay))
        frame = self._decorate(build_reply(reply, data))
        wire_s = delay + len(frame) / self.timing.byte_rate
        if self.faults.drop_chunk == chunk:
            self.faults = replace(self.faults, drop_chunk=None)
            return Reply(frame[: len(frame) // 2], self.scaled(wire_s / 2), drop=True)
        return Reply(frame, self.scaled(wire_s))


class _Rejected(Exception):
    """The unit refuses a request (sent back with the rejected flag)."""


def _corrupt_checksum(frame: bytes) -> bytes:
    # The checksum is the byte before ETX, or a doubled DLE there; flip it without making
    # a DLE (which would change the stuffing), so only the sum is wrong.
    pos = len(frame) - 2
    if frame[pos] == 0x10:
        return frame[: pos - 1] + b"\x11" + frame[pos + 1 :]
    bad = frame[pos] ^ 0x01
    if bad == 0x10:
        bad = 0x12
    return frame[:pos] + bytes((bad,)) + frame[pos + 1 :]


class _Link:
    """One byte pipe to the client: a TCP connection or the pty master."""

    def recv(self) -> bytes | None:
        """Bytes that arrived within ``_POLL_S`` (``b""`` if none), ``None`` at EOF."""
        raise NotImplementedError

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def hang_up(self) -> None:
        raise NotImplementedError


class _SocketLink(_Link):
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        conn.settimeout(_POLL_S)

    def recv(self) -> bytes | None:
        try:
            data = self.conn.recv(4096)
        except TimeoutError:
            return b""
        except OSError:
            return None
        return data or None

    def send(self, data: bytes) -> None:
        self.conn.settimeout(5.0)
        try:
            self.conn.sendall(data)
        finally:
            self.conn.settimeout(_POLL_S)

    def hang_up(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        self.conn.close()


class _PtyLink(_Link):
    def __init__(self, master: int) -> None:
        self.master = master

    def recv(self) -> bytes | None:
        ready, _, _ = select.select([self.master], [], [], _POLL_S)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave open right now: nothing to read
                time.sleep(_POLL_S)
                return b""
            return None

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 5.0
        while view and time.monotonic() < deadline:
            _, ready, _ = select.select([], [self.master], [], _POLL_S)
            if ready:
                view = view[os.write(self.master, view) :]

    def hang_up(self) -> None:
        # A serial line cannot be closed from the far end; the modem says so instead.
        self.send(NO_CARRIER)


class SeismographSimulator:
    """One simulated unit on one link: ``transport="tcp"`` (bound to 127.0.0.1, port 0)
    or ``"pty"`` (the client opens ``url``, the pty's slave path).

    TCP sessions get RING/CONNECT first. A second concurrent TCP connection is reset
    (``busy="refuse"``) or takes over by dropping the first (``busy="drop_first"``); on the
    pty the line is locked by the client's session. ``refused`` closes the listener (TCP
    ECONNREFUSED) or locks the line (pty); ``silent`` and ``wedged`` accept and never answer,
    a wedged TCP unit also drops sessions every ``redial_s`` until ``clear_faults()``.
    """

    def __init__(
        self,
        unit: SimulatedUnit | None = None,
        *,
        transport: str = "tcp",
        busy: str = "refuse",
        ring: bool = True,
        host: str = "127.0.0.1",
        **unit_options: Any,
    ) -> None:
        if transport not in ("tcp", "pty"):
            raise ValueError("transport must be 'tcp' or 'pty'")
        if busy not in ("refuse", "drop_first"):
            raise ValueError("busy must be 'refuse' or 'drop_first'")
        self.unit = unit or SimulatedUnit(**unit_options)
        self.transport = transport
        self.busy = busy
        self.ring = ring
        self.host = host
        self.port = 0
        self.connections = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._active: _SocketLink | None = None
        self._guard = threading.Lock()
        self._master = self._slave = -1
        self._line_locked = False
        self._slave_path = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SeismographSimulator:
        if self.transport == "tcp":
            self._listen()
            self._spawn(self._accept_loop)
        else:
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)  # no echo, no line discipline before a client configures it
            self._slave_path = os.ttyname(self._slave)
            self._spawn(self._pty_loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._guard:
            if self._active is not None:
                self._active.hang_up()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> SeismographSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """What ``MiniMateClient`` opens: ``socket://127.0.0.1:port`` or ``/dev/pts/N``."""
        if self.transport == "tcp":
            return f"socket://{self.host}:{self.port}"
        return self._slave_path

    @property
    def conn_key(self) -> str:
        """``tcp:127.0.0.1:port`` or ``serial:/dev/pts/N:38400``."""
        return LinkTarget(self.url).conn_key

    # -- control (delegates to the unit, all thread-safe) ----------------------------------

    @property
    def sessions(self) -> int:
        """Sessions opened (POLL handshakes), the count that "one dial" tests assert."""
        return self.unit.sessions

    @property
    def command_counts(self) -> Counter[str]:
        return self.unit.command_counts

    def record_event(self, timestamp: dt.datetime | None = None) -> EventHeader | None:
        return self.unit.record_event(timestamp)

    def record_events(self, n: int) -> list[EventHeader]:
        return self.unit.record_events(n)

    def erase(self) -> None:
        self.unit.erase()

    def erase_and_rerecord(self, n: int | None = None) -> list[EventHeader]:
        return self.unit.erase_and_rerecord(n)

    def set_fault(self, **changes: object) -> None:
        """See ``Faults``; a wedged unit stays wedged until ``clear_faults()``."""
        self.unit.set_fault(**changes)
        self._apply_refusal()

    def clear_faults(self) -> None:
        self.unit.clear_faults()
        self._apply_refusal()

    # -- I/O -------------------------------------------------------------------------------

    def _spawn(self, target: Callable[[], None]) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]  # one per past session
        thread = threading.Thread(
            target=target, name=f"seismo-sim-{self.unit.identity.serial}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(8)
        listener.settimeout(_POLL_S)
        self.port = listener.getsockname()[1]
        self._listener = listener

    def _apply_refusal(self) -> None:
        """``refused`` now: close the listener (connects get RST) or lock the line."""
        refused = self.unit.faults.refused
        if self.transport == "pty":
            self._lock_line(refused)
            return
        with self._guard:
            if refused and self._listener is not None:
                self._listener.close()
                self._listener = None
            elif not refused and self._listener is None:
                self._relisten()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            listener = self._listener
            if listener is None:
                self._stop.wait(_POLL_S)
                continue
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self._admit(conn)

    def _relisten(self) -> None:
        for _ in range(100):  # bounded: the port may linger for a moment
            try:
                self._listen()
                return
            except OSError:
                if self._stop.wait(_POLL_S):
                    return

    def _admit(self, conn: socket.socket) -> None:
        with self._guard:
            if self._active is not None and self.busy == "refuse":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()  # RST: one connection at a time
                return
            if self._active is not None:
                self._active.hang_up()
            link = _SocketLink(conn)
            self._active = link
            self.connections += 1
        self._spawn(lambda: self._tcp_session(link))

    def _tcp_session(self, link: _SocketLink) -> None:
        try:
            if self.ring and not self.unit.faults.silent:
                link.send(RING_CONNECT)
            self._converse(link, redial=True)
        except OSError:
            pass  # the client went away: the session is over either way
        finally:
            with self._guard:
                if self._active is link:
                    self._active = None
            link.hang_up()

    def _pty_loop(self) -> None:
        link = _PtyLink(self._master)
        while not self._stop.is_set():
            self._converse(link, redial=False)

    def _lock_line(self, locked: bool) -> None:
        """pty ``refused``: hold the line's lock so the client's exclusive open fails."""
        if locked == self._line_locked:
            return
        try:
            fcntl.flock(self._slave, (fcntl.LOCK_EX | fcntl.LOCK_NB) if locked else fcntl.LOCK_UN)
            self._line_locked = locked
        except OSError:
            pass  # a client holds the line now; try again on the next turn

    def _converse(self, link: _Link, *, redial: bool) -> None:
        """Read request frames and answer them until EOF, a drop or stop."""
        reader = FrameReader(REQUEST_START)
        session = Session()
        started = time.monotonic()
        while not self._stop.is_set():
            if self.transport == "pty":
                self._lock_line(self.unit.faults.refused)
            data = link.recv()
            if data is None:
                return
            faults = self.unit.faults  # read after recv: a fault set meanwhile applies
            if (
                redial
                and faults.wedged
                and time.monotonic() - started > self.unit.scaled(self.unit.timing.redial_s)
            ):
                return  # the wedged unit's call-home dial kills the inbound session
            if not data or faults.silent or faults.wedged:
                continue
            try:
                frames = reader.feed(data)
            except (ChecksumError, ProtocolError):
                reader = FrameReader(REQUEST_START)  # a unit ignores frames it cannot read
                continue
            for frame in frames:
                if frame.sub == sub.POLL:
                    session = Session()  # on a serial line a POLL opens a new session
                reply = self.unit.handle(session, frame)
                if reply.delay_s and self._stop.wait(reply.delay_s):
                    return
                link.send(reply.data)
                if reply.drop:
                    link.hang_up()
                    return


def start_simulators(
    tcp: int = 1, pty: int = 1, events: int = 3, time_scale: float = 1.0
) -> list[SeismographSimulator]:
    """Start ``tcp`` + ``pty`` units, each with ``events`` recorded events."""
    sims = []
    for i in range(tcp + pty):
        transport = "tcp" if i < tcp else "pty"
        prefix = "BE" if transport == "tcp" else "BA"
        sims.append(
            SeismographSimulator(
                transport=transport,
                serial=f"{prefix}{18189 + i}",
                events=events,
                time_scale=time_scale,
            ).start()
        )
    return sims
