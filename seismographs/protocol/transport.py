"""One blocking transport over pyserial's ``serial_for_url``: a device path (RS-232, a pty)
and ``socket://host:port`` (a cellular modem) run the same code; ``loop://`` serves byte
tests. It sends frames and reads replies against a deadline, turning pyserial's and the
OS's failures into the link errors callers can act on.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass

import serial

from seismographs.protocol.errors import LinkDropped, LinkRefused, LinkTimeout
from seismographs.protocol.framing import REPLY_START, Frame, FrameReader

DEFAULT_BAUD = 38400
NO_CARRIER = b"NO CARRIER"
_READ_SLICE_S = 0.05  # how long one read may block, so deadlines are honoured closely


@dataclass(frozen=True)
class LinkTarget:
    """Where a unit is: a pyserial URL and, for serial lines, the baud rate."""

    url: str
    baudrate: int = DEFAULT_BAUD

    @property
    def is_tcp(self) -> bool:
        return self.url.startswith("socket://")

    @property
    def conn_key(self) -> str:
        """``tcp:host:port`` or ``serial:path:baud``, the key seismo-relay caches under."""
        if self.is_tcp:
            return "tcp:" + self.url.removeprefix("socket://")
        return f"serial:{self.url}:{self.baudrate}"


_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")


def parse_conn_key(conn_key: str) -> LinkTarget:
    """``tcp:host:port`` → ``socket://host:port``; ``serial:/dev/ttyS0:38400`` → the path.

    Only a host name / IP address and a plain device path: a serial "path" that is a
    pyserial URL (``spy://…?file=``, ``rfc2217://``, ``loop://``) would let whoever
    registers a unit make the worker write files or dial elsewhere.
    """
    kind, _, rest = conn_key.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if not _HOST.fullmatch(host) or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad tcp conn_key {conn_key!r}: want tcp:host:port")
        return LinkTarget(f"socket://{host}:{int(port)}")
    if kind == "serial":
        path, _, baud = rest.rpartition(":")
        if not path or "://" in path or not baud.isdigit() or int(baud) == 0:
            raise ValueError(f"bad serial conn_key {conn_key!r}: want serial:path:baud")
        return LinkTarget(path, int(baud))
    raise ValueError(f"bad conn_key {conn_key!r}: want tcp:host:port or serial:path:baud")


def _open_error(url: str, exc: Exception) -> Exception:
    text = str(exc)
    if "timed out" in text:
        return LinkTimeout(f"{url}: no answer to connect ({text})")
    return LinkRefused(f"{url}: {text}")


class SerialTransport:
    """A framed request/response link. Not thread-safe: one session, one thread."""

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUD, write_timeout_s: float = 5.0):
        self.url = url
        self.baudrate = baudrate
        self.write_timeout_s = write_timeout_s
        self.bytes_in = 0
        self.bytes_out = 0
        self._serial: serial.SerialBase | None = None
        self._reader = FrameReader(REPLY_START)
        self._tail = b""

    def open(self) -> None:
        try:
            # exclusive: a second session on the same serial line is refused, like the unit.
            self._serial = serial.serial_for_url(
                self.url,
                baudrate=self.baudrate,
                timeout=_READ_SLICE_S,
                write_timeout=self.write_timeout_s,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise _open_error(self.url, exc) from exc

    def close(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):  # already gone
                self._serial.close()
            self._serial = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def _port(self) -> serial.SerialBase:
        if self._serial is None:
            raise LinkDropped(f"{self.url}: link is not open")
        return self._serial

    def _lost(self, exc: Exception) -> Exception:
        # A TCP reset before the unit ever spoke is the unit refusing this session (busy);
        # after that it is a drop in the middle of a conversation.
        if self.bytes_in == 0 and self.url.startswith("socket://"):
            return LinkRefused(f"{self.url}: connection closed before any reply ({exc})")
        return LinkDropped(f"{self.url}: {exc}")

    def send(self, frame: bytes) -> None:
        """Drop stale input (a late reply, noise), then write one request frame."""
        port = self._port()
        try:
            # Every concrete pyserial port has it; the stub's SerialBase does not.
            port.reset_input_buffer()  # type: ignore[attr-defined]
            port.write(frame)
            port.flush()
        except serial.SerialTimeoutException as exc:
            raise LinkTimeout(f"{self.url}: write blocked ({exc})") from exc
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc
        self._reader = FrameReader(REPLY_START)
        self._tail = b""
        self.bytes_out += len(frame)

    def _read_some(self, wait_s: float) -> bytes:
        port = self._port()
        try:
            # Block up to one slice for the first byte, then take whatever else is buffered
            # (socket:// reports in_waiting as 0/1, so asking for it would read bytewise).
            port.timeout = max(0.0, min(_READ_SLICE_S, wait_s))
            data = port.read(1)
            if data:
                port.timeout = 0
                data += port.read(65536)
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc
        if data:
            self.bytes_in += len(data)
            self._tail = (self._tail + data)[-64:]
            if NO_CARRIER in self._tail:
                raise LinkDropped(f"{self.url}: modem reported NO CARRIER")
        return data

    def read_frame(self, timeout_s: float) -> Frame:
        """The next complete reply frame, skipping text and noise before it."""
        frame = self._read(timeout_s, idle_gap_s=None)
        if frame is None:  # unreachable: only the idle-gap mode ends without a frame
            raise LinkTimeout(f"{self.url}: no reply frame")
        return frame

    def read_frame_or_end(self, timeout_s: float, idle_gap_s: float) -> Frame | None:
        """Like ``read_frame``, but ``None`` when the unit sent a few stray bytes outside any
        frame and then stayed quiet for ``idle_gap_s``: the 5A end-of-stream quirk."""
        return self._read(timeout_s, idle_gap_s=idle_gap_s)

    def _read(self, timeout_s: float, idle_gap_s: float | None) -> Frame | None:
        deadline = time.monotonic() + timeout_s
        received = 0
        last_byte_at = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                state = "inside a frame" if self._reader.in_frame else f"after {received} bytes"
                raise LinkTimeout(f"{self.url}: no complete reply within {timeout_s:g} s ({state})")
            data = self._read_some(deadline - now)
            if data:
                received += len(data)
                last_byte_at = time.monotonic()
                frames = self._reader.feed(data)
                if frames:
                    return frames[0]
            elif (
                idle_gap_s is not None
                and received
                and not self._reader.in_frame
                and time.monotonic() - last_byte_at >= idle_gap_s
            ):
                return None
