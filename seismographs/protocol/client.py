"""MiniMateClient: the commands an operator needs, over one link session.

Each call runs its command sequence (e.g. 1E/1F walk → 0A → 0C → 5A) with a deadline per
exchange. One client = one session: open it with ``with MiniMateClient(url) as unit:``
(the POLL handshake runs on enter) and close it when done, as Blastware does. It is not
thread-safe and does no locking of its own: one session per unit is the caller's job.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from types import TracebackType

from seismographs.protocol import commands as sub
from seismographs.protocol.errors import CommandRejected, LinkDropped, NoSuchEvent, ProtocolError
from seismographs.protocol.framing import Frame, build_request, reply_sub
from seismographs.protocol.records import (
    CONFIG_LEN,
    HEADER_RECORD_LEN,
    IDENTITY_LEN,
    SERIAL_LEN,
    DeviceConfig,
    EventHeader,
    EventKey,
    Identity,
    MonitorStatus,
    Waveform,
    WaveformInfo,
    decode_header_record,
    decode_identity,
    decode_walk_entry,
    key_hex,
)
from seismographs.protocol.transport import DEFAULT_BAUD, SerialTransport, parse_conn_key

Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)``, called after every waveform chunk."""

MAX_EVENTS = 10_000  # bound on any walk: a unit holds far fewer (983 KB of memory)
_MIN_CHUNK_BYTES = 64  # bounds the 5A loop; real chunks are ~2 KB


class MiniMateClient:
    """A session with one unit.

    ``url``: a device path or ``socket://host:port`` (``loop://`` in tests).
    ``timeout_s``: deadline for each request/reply exchange.
    ``chunk_timeout_s``: deadline for each 5A chunk (seismo-relay uses 10 s).
    ``idle_gap_s``: silence that ends the 5A stream after its one stray byte (1.5 s
    absorbs a modem's 1 s forwarding buffer; tests pass less).
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 10.0,
        *,
        baudrate: int = DEFAULT_BAUD,
        chunk_timeout_s: float = 10.0,
        idle_gap_s: float = 1.5,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.chunk_timeout_s = chunk_timeout_s
        self.idle_gap_s = idle_gap_s
        self.transport = SerialTransport(url, baudrate=baudrate, write_timeout_s=timeout_s)
        self.commands_sent = 0

    @classmethod
    def from_conn_key(cls, conn_key: str, **kwargs: float) -> MiniMateClient:
        """``tcp:host:port`` or ``serial:path:baud`` → a client for that unit."""
        target = parse_conn_key(conn_key)
        return cls(target.url, baudrate=target.baudrate, **kwargs)

    # -- session ---------------------------------------------------------------------------

    def open(self) -> None:
        """Open the link and run the POLL handshake (skips RING/CONNECT and the banner)."""
        self.transport.open()
        try:
            self._exchange(sub.POLL)
        except BaseException:
            self.transport.close()
            raise

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> MiniMateClient:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- exchanges -------------------------------------------------------------------------

    def _exchange(
        self, command: int, length: int = 0, data: bytes = b"", *, timeout_s: float | None = None
    ) -> Frame:
        """One request, one reply, with the reply SUB and the rejection flag checked."""
        self.transport.send(build_request(command, length, data))
        self.commands_sent += 1
        frame = self.transport.read_frame(self.timeout_s if timeout_s is None else timeout_s)
        return self._checked(command, frame)

    @staticmethod
    def _checked(command: int, frame: Frame) -> Frame:
        if frame.sub != reply_sub(command):
            raise ProtocolError(
                f"SUB {command:02X}: reply SUB {frame.sub:02X}, expected {reply_sub(command):02X}"
            )
        if frame.rejected:
            reason = frame.data.decode("ascii", "replace") or "rejected"
            raise CommandRejected(f"SUB {command:02X}: {reason}")
        return frame

    def _read_two_step(
        self, command: int, params: bytes = b"", expected: int | None = None
    ) -> bytes:
        """Probe (LEN 0) for the size, then fetch exactly that many bytes."""
        size = self._exchange(command, 0, params).length
        if expected is not None and size != expected:
            raise ProtocolError(
                f"SUB {command:02X}: unit announced {size} bytes, expected {expected}"
            )
        data = self._exchange(command, size, params).data
        if len(data) != size:
            raise ProtocolError(f"SUB {command:02X}: got {len(data)} bytes, asked for {size}")
        return data

    # -- identity and config ---------------------------------------------------------------

    def identify(self) -> Identity:
        """Serial number (15), firmware, model and calibration date (01)."""
        serial_block = self._read_two_step(sub.SERIAL, expected=SERIAL_LEN)
        identity_block = self._read_two_step(sub.IDENTITY, expected=IDENTITY_LEN)
        return decode_identity(serial_block, identity_block)

    def read_config(self) -> DeviceConfig:
        """Compliance config with the unit's config revision."""
        return DeviceConfig.decode(self._read_two_step(sub.CONFIG_READ, expected=CONFIG_LEN))

    def write_config(self, config: DeviceConfig) -> DeviceConfig:
        """Write (68) and commit (73); returns the config read back, new revision included.
        Raises ``CommandRejected`` naming the field when the unit refuses a value."""
        self._exchange(sub.CONFIG_WRITE, CONFIG_LEN, config.encode())
        self._exchange(sub.CONFIG_COMMIT)
        return self.read_config()

    # -- events ----------------------------------------------------------------------------

    def _walk(self, stop: int | None = None) -> Iterator[tuple[int, int]]:
        """Yield (index, key) along 1E/1F. Ends when data8's last 4 bytes are zero: event 0
        may legitimately have key 00000000."""
        frame = self._exchange(sub.WALK_FIRST, 12)
        for index in range(MAX_EVENTS):
            key, at_end = decode_walk_entry(frame.data)
            if at_end or (stop is not None and index >= stop):
                return
            yield index, key
            if stop is not None and index + 1 >= stop:
                return
            frame = self._exchange(sub.WALK_NEXT, 12, key.to_bytes(4, "big"))
        raise ProtocolError(f"event walk did not end within {MAX_EVENTS} events")

    def count_events(self) -> int:
        """The cheap probe: a 1E/1F walk with no waveform transfer."""
        return sum(1 for _ in self._walk())

    def list_event_keys(self) -> list[EventKey]:
        return [EventKey(index, key_hex(key)) for index, key in self._walk()]

    def _header_for(self, index: int, key: int) -> tuple[WaveformInfo, EventHeader]:
        params = key.to_bytes(4, "big")
        info = WaveformInfo.decode(self._read_two_step(sub.WAVEFORM_HEADER, params))
        record = self._read_two_step(sub.EVENT_RECORD, params, expected=HEADER_RECORD_LEN)
        return info, decode_header_record(index, record)

    def read_event_headers(self, start: int = 0, stop: int | None = None) -> list[EventHeader]:
        """Headers of events ``start`` ≤ index < ``stop`` (all when ``stop`` is None) in
        one walk: 1E/1F to each, then 0A and 0C. Fetching only new indices is this call."""
        return [
            self._header_for(index, key)[1] for index, key in self._walk(stop) if index >= start
        ]

    def read_event_header(self, index: int) -> EventHeader:
        """One event by index (the walk stops once it is in hand)."""
        headers = self.read_event_headers(index, index + 1)
        if not headers:
            raise NoSuchEvent(f"no event {index} on the unit")
        return headers[0]

    def read_waveform(self, index: int, progress: Progress | None = None) -> Waveform:
        """Download event ``index`` chunk by chunk over 5A. Returns only a complete body:
        a stream that ends short or breaks raises and nothing partial is returned."""
        found = [key for i, key in self._walk(index + 1) if i == index]
        if not found:
            raise NoSuchEvent(f"no event {index} on the unit")
        info, header = self._header_for(index, found[0])
        if info.waveform_key != header.waveform_key:
            raise ProtocolError(f"0A key {info.waveform_key} != 0C key {header.waveform_key}")
        body, chunks = self._stream(found[0].to_bytes(4, "big"), info.total_bytes, progress)
        return Waveform(
            index=index,
            waveform_key=header.waveform_key,
            timestamp=header.timestamp,
            sample_rate=header.sample_rate,
            pre_trigger_s=header.pre_trigger_s,
            geo_range=header.geo_range,
            raw=body,
            chunks=chunks,
        )

    def _stream(self, key: bytes, total: int, progress: Progress | None) -> tuple[bytes, int]:
        """5A chunks until the unit's end of stream (one stray byte, then silence)."""
        body = bytearray()
        max_chunks = total // _MIN_CHUNK_BYTES + 2
        for chunk in range(max_chunks):
            counter = chunk * sub.STREAM_COUNTER_STEP
            self.transport.send(build_request(sub.STREAM, 8, key + counter.to_bytes(4, "big")))
            self.commands_sent += 1
            frame = self.transport.read_frame_or_end(self.chunk_timeout_s, self.idle_gap_s)
            if frame is None:
                if len(body) != total:
                    raise LinkDropped(f"stream ended at {len(body)} of {total} bytes")
                return bytes(body), chunk
            body += self._checked(sub.STREAM, frame).data
            if len(body) > total:
                raise ProtocolError(f"stream overran: {len(body)} of {total} bytes")
            if progress is not None:
                progress(len(body), total)
        raise ProtocolError(f"stream did not end within {max_chunks} chunks")

    # -- monitoring and memory -------------------------------------------------------------

    def read_monitor_status(self) -> MonitorStatus:
        """1C: its length differs idle vs monitoring, so the probe's answer decides."""
        return MonitorStatus.decode(self._read_two_step(sub.MONITOR_STATUS))

    def start_monitoring(self) -> MonitorStatus:
        """Ask the unit to start; it runs a sensor check first (``starting`` until done)."""
        self._exchange(sub.MONITOR_START)
        return self.read_monitor_status()

    def stop_monitoring(self) -> MonitorStatus:
        self._exchange(sub.MONITOR_STOP)
        return self.read_monitor_status()

    def storage_range(self) -> tuple[str, str]:
        """06: the first and last stored keys (the last 8 of its 36 bytes)."""
        raw = self._read_two_step(sub.STORAGE_RANGE, expected=sub.STORAGE_RANGE_LEN)
        first, last = struct.unpack(">II", raw[-8:])
        return key_hex(first), key_hex(last)

    def erase_all(self) -> None:
        """Blastware's sequence: A3 begin, 1C status, 06 range, A2 confirm. Afterwards the
        unit's key counter restarts at 0x01110000, so old keys will come back."""
        self._exchange(sub.ERASE_BEGIN)
        self.read_monitor_status()
        self.storage_range()
        self._exchange(sub.ERASE_CONFIRM)
