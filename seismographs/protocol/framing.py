"""MiniMate framing on bytes alone: DLE stuffing, the 8-bit sum, and a frame reader.

Wire format (the public reverse-engineered one, with our documented stand-in choices):

* request  = ACK(0x41) STX(0x02) stuff(payload + checksum) ETX(0x03)
* reply    = DLE(0x10) STX(0x02) stuff(payload + checksum) ETX(0x03)   (bare ETX)
* payload  = CMD DLE ADDR FLAGS SUB LEN OFF_HI OFF_LO SIZE_HI SIZE_LO data...
* stuffing: every literal 0x10 of payload and checksum is sent twice.
* checksum: sum of the de-stuffed payload mod 256; SUB A5 (5A stream) frames use the
  variant where a ``10 XX`` pair counts only XX.
* reply SUB = 0xFF - request SUB.

LEN (payload[5]) is the two-step read's length byte: 0 in a probe, the wanted size in the
fetch; a probe reply announces the available size in LEN with no data. A bare ETX can occur
inside data and the public notes do not say how the unit delimits such frames, so our
stand-in adds SIZE (16-bit data size, also covering 2 KB stream chunks) and the reader is
driven by it, checking that ETX follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from seismographs.protocol.errors import ChecksumError, ProtocolError

ACK = 0x41
STX = 0x02
ETX = 0x03
DLE = 0x10
CMD = 0x02
ADDR = 0x10
HEADER_LEN = 10
FLAG_REJECTED = 0x01
REQUEST_START = bytes((ACK, STX))
REPLY_START = bytes((DLE, STX))
STREAM_REQUEST_SUB = 0x5A
STREAM_REPLY_SUB = 0xFF - STREAM_REQUEST_SUB  # 0xA5


def reply_sub(request_sub: int) -> int:
    """The SUB a unit answers with: always 0xFF minus the request's SUB."""
    return 0xFF - request_sub


def checksum(payload: bytes) -> int:
    """8-bit sum of the de-stuffed payload."""
    return sum(payload) & 0xFF


def stream_checksum(payload: bytes) -> int:
    """The 5A-stream variant: a ``10 XX`` pair counts only XX."""
    total = 0
    i = 0
    while i < len(payload):
        if payload[i] == DLE and i + 1 < len(payload):
            i += 1
        total += payload[i]
        i += 1
    return total & 0xFF


def stuff(data: bytes) -> bytes:
    """Double every DLE so it cannot be mistaken for a frame start."""
    return data.replace(bytes((DLE,)), bytes((DLE, DLE)))


def _checksum_for(sub: int, payload: bytes) -> int:
    return stream_checksum(payload) if sub == STREAM_REPLY_SUB else checksum(payload)


def encode(start: bytes, payload: bytes) -> bytes:
    """Wrap a payload (header + data) into a frame that begins with ``start``."""
    body = payload + bytes((_checksum_for(payload[4], payload),))
    return start + stuff(body) + bytes((ETX,))


def header(sub: int, length: int, size: int, flags: int = 0, offset: int = 0) -> bytes:
    return (
        bytes((CMD, DLE, ADDR, flags, sub, length))
        + offset.to_bytes(2, "big")
        + size.to_bytes(2, "big")
    )


def build_request(sub: int, length: int = 0, data: bytes = b"", offset: int = 0) -> bytes:
    """A host request. ``length`` is payload[5]: 0 for a probe, the wanted size for a fetch.
    ``data`` carries the command's parameters (a key, a counter, a config blob)."""
    return encode(REQUEST_START, header(sub, length, len(data), offset=offset) + data)


def build_reply(sub: int, data: bytes = b"", *, length: int | None = None, flags: int = 0) -> bytes:
    """A unit reply with SUB ``sub`` (already 0xFF - request SUB). ``length`` (payload[5])
    defaults to ``len(data)`` capped at 0xFF; a probe reply announces a size with no data."""
    size = min(len(data), 0xFF) if length is None else length
    return encode(REPLY_START, header(sub, size, len(data), flags) + data)


@dataclass(frozen=True)
class Frame:
    """One de-stuffed, checksum-verified frame."""

    sub: int
    flags: int
    length: int
    offset: int
    data: bytes

    @property
    def rejected(self) -> bool:
        return bool(self.flags & FLAG_REJECTED)


class FrameReader:
    """Incremental parser: ``feed(bytes)`` returns the frames completed so far.

    Bytes before a start marker (RING/CONNECT text, the boot banner, line noise) are
    skipped and kept in ``skipped`` so the transport can spot ``NO CARRIER``. A frame
    broken by a fresh start marker, a wrong terminator or a bad sum raises.
    """

    def __init__(self, start: bytes = REPLY_START) -> None:
        self.start = start
        self.skipped = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._hunting = True
        self._prev = -1
        self._body = bytearray()
        self._escape = False
        self._need: int | None = None

    @property
    def in_frame(self) -> bool:
        """True when a frame has started and is not complete yet (a truncated frame)."""
        return not self._hunting

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        for byte in data:
            frame = self._step(byte)
            if frame is not None:
                frames.append(frame)
        return frames

    def _step(self, byte: int) -> Frame | None:
        if self._hunting:
            if self._prev == self.start[0] and byte == self.start[1]:
                self._hunting = False
                self._prev = -1
                if self.skipped:
                    del self.skipped[-1:]  # the first marker byte is not noise
                return None
            self.skipped.append(byte)
            del self.skipped[:-256]
            self._prev = byte
            return None
        if self._need is not None and len(self._body) == self._need:
            return self._finish(byte)
        if self._escape:
            self._escape = False
            if byte != DLE:
                self._reset()
                raise ProtocolError(f"truncated frame: DLE followed by {byte:02X} inside a frame")
            self._body.append(DLE)
        elif byte == DLE:
            self._escape = True
            return None
        else:
            self._body.append(byte)
        if self._need is None and len(self._body) == HEADER_LEN:
            head = bytes(self._body)
            if head[0] != CMD or head[1] != DLE:
                self._reset()
                raise ProtocolError(f"bad frame header {head.hex()}")
            self._need = HEADER_LEN + int.from_bytes(head[8:10], "big") + 1
        return None

    def _finish(self, byte: int) -> Frame:
        body = bytes(self._body)
        self._reset()
        if byte != ETX:
            raise ProtocolError(f"expected ETX after frame, got {byte:02X}")
        payload, received = body[:-1], body[-1]
        expected = _checksum_for(payload[4], payload)
        if received != expected:
            raise ChecksumError(
                f"SUB {payload[4]:02X}: checksum {received:02X}, computed {expected:02X}"
            )
        head = payload[:HEADER_LEN]
        return Frame(
            sub=head[4],
            flags=head[3],
            length=head[5],
            offset=(head[6] << 8) | head[7],
            data=payload[HEADER_LEN:],
        )
