"""SNMPv2c request/response over one UDP socket per address family, without pysnmp's engine.

Why: pysnmp's command generator keeps a target-address row per agent address in its
engine, and every row added or dropped makes the engine rebuild a map over all rows on the
next message it receives (``SnmpV1SecurityModel._com2sec``). A fleet of distinct modems
(a campaign, a busy pipeline) pays that on nearly every answer. And decoding an answer
with pyasn1's schema-driven decoder was, after that, a fifth of an snmp worker's CPU.

v2c carries no security state: a message is the community and a PDU, and an answer is
matched to its request by request-id and by the address it came from. This module builds
and reads those messages itself (the BER subset of RFC 3416 messages: INTEGER, OCTET
STRING, NULL, OBJECT IDENTIFIER, the application types and the three exceptions), sends
them from the calling thread (``Wire``), and handles timeouts, retries and answers that are
not ours. Error statuses become
exceptions in ``devices.links.snmp``; SNMPv3 (USM) stays on pysnmp's engine there. The
simulated modems (``simulators.modem``) answer v2c with the same codec: requests of every
type in, Responses out.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

Address = tuple[str, int]
Oid = tuple[int, ...]
_REQUEST_IDS = 2**31  # request-id is an Integer32: stay positive
_ADDRESS_CACHE_SIZE = 4096
_MAX_DATAGRAM = 65535
_OID_CACHE_SIZE = 4096

# BER tags (X.690; SNMP's application and context types from RFC 2578 / RFC 3416).
INTEGER, OCTET_STRING, NULL, OBJECT_IDENTIFIER, SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
IP_ADDRESS, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW = 0x80, 0x81, 0x82
GET, GET_NEXT, RESPONSE, SET, GET_BULK = 0xA0, 0xA1, 0xA2, 0xA3, 0xA5
_VERSION_2C = 1
# RFC 3416's error-status names, by value.
ERROR_STATUSES = (
    "noError",
    "tooBig",
    "noSuchName",
    "badValue",
    "readOnly",
    "genErr",
    "noAccess",
    "wrongType",
    "wrongLength",
    "wrongEncoding",
    "wrongValue",
    "noCreation",
    "inconsistentValue",
    "resourceUnavailable",
    "commitFailed",
    "undoFailed",
    "authorizationError",
    "notWritable",
    "inconsistentName",
)
_UNSIGNED = (COUNTER32, GAUGE32, TIMETICKS, COUNTER64)
_OCTETS = (OCTET_STRING, IP_ADDRESS, OPAQUE)


class EndOfMibView:
    """The value of a row past the agent's last object (a walk stops there)."""

    def __repr__(self) -> str:
        return "END_OF_MIB_VIEW"


END_OF_MIB = EndOfMibView()
Value = int | bytes | str | None | EndOfMibView


class WireTimeout(TimeoutError):
    """No matching answer within the timeout of every try."""


class Malformed(ValueError):
    """Bytes that are not a (supported) SNMPv2c message."""


@dataclass(frozen=True)
class Request:
    """A request PDU without its request-id (each send numbers it)."""

    tag: int  # GET, SET or GET_BULK
    var_binds: bytes  # the encoded VarBindList
    second: int = 0  # error-status, or non-repeaters of a GETBULK
    third: int = 0  # error-index, or max-repetitions of a GETBULK


@dataclass(frozen=True)
class Response:
    request_id: int
    error_status: int
    error_index: int
    var_binds: list[tuple[Oid, Value]]


@dataclass(frozen=True)
class Pdu:
    """Any decoded PDU, its values still as (tag, content): an agent needs the SMI type of
    a SET value (Gauge32 and INTEGER both carry a number)."""

    tag: int
    request_id: int
    second: int  # error-status, or non-repeaters of a GETBULK
    third: int  # error-index, or max-repetitions of a GETBULK
    var_binds: list[tuple[Oid, int, bytes]]


# --- encoding ------------------------------------------------------------------------------
def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def _integer(tag: int, value: int) -> bytes:
    """Two's complement in the fewest octets (X.690 8.3.2)."""
    magnitude = value if value >= 0 else ~value
    return _tlv(tag, value.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True))


def _unsigned(tag: int, value: int) -> bytes:
    if value < 0:
        raise ValueError(f"{value} is negative: not an unsigned SNMP value")
    return _integer(tag, value)


_oid_cache: dict[str, bytes] = {}


def encode_oid(oid: str) -> bytes:
    """``oid`` (dotted) as a BER OBJECT IDENTIFIER; remembered (the same few every capture)."""
    encoded = _oid_cache.get(oid)
    if encoded is None:
        arcs = [int(arc) for arc in oid.strip(".").split(".")]
        if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
            raise ValueError(f"{oid!r} is not an object identifier")
        content = bytearray()
        for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
            chunk = [arc & 0x7F]
            arc >>= 7
            while arc:
                chunk.append(0x80 | (arc & 0x7F))
                arc >>= 7
            content.extend(reversed(chunk))
        if len(_oid_cache) >= _OID_CACHE_SIZE:
            _oid_cache.clear()
        encoded = _oid_cache[oid] = _tlv(OBJECT_IDENTIFIER, bytes(content))
    return encoded


def encode_value(value: Any) -> bytes:
    """A SET value: ``int`` (INTEGER), ``bytes``/``str`` (OCTET STRING), or a pysnmp value
    of the SMI types (its tag says which: Gauge32 for the MIB's Unsigned32, say)."""
    if isinstance(value, bool):
        raise TypeError("use 1/2 (TruthValue) rather than a Python bool")
    if isinstance(value, bytes | str):
        return _tlv(OCTET_STRING, value.encode() if isinstance(value, str) else value)
    if isinstance(value, int):  # an IntEnum too (TruthValue and the like)
        return _integer(INTEGER, int(value))
    tag_set = getattr(value, "tagSet", None)
    if tag_set is None:
        raise TypeError(f"cannot send {type(value).__name__} over SNMP")
    tag = tag_set[-1]
    number = tag.tagClass | tag.tagFormat | tag.tagId
    if number == INTEGER:
        return _integer(INTEGER, int(value))
    if number in _UNSIGNED:
        return _unsigned(number, int(value))
    if number in _OCTETS:
        return _tlv(number, bytes(value))
    if number == OBJECT_IDENTIFIER:
        return encode_oid(str(value))
    if number == NULL:
        return _NULL
    raise TypeError(f"cannot send {type(value).__name__} over SNMP")


def _var_binds(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return _tlv(SEQUENCE, b"".join(_tlv(SEQUENCE, oid + value) for oid, value in pairs))


_NULL = bytes((NULL, 0))
# The three exceptions an agent answers instead of a value (RFC 3416 §3).
NO_SUCH_OBJECT_VALUE = bytes((NO_SUCH_OBJECT, 0))
NO_SUCH_INSTANCE_VALUE = bytes((NO_SUCH_INSTANCE, 0))
END_OF_MIB_VIEW_VALUE = bytes((END_OF_MIB_VIEW, 0))


def get_request(oids: list[str]) -> Request:
    return Request(GET, _var_binds([(encode_oid(oid), _NULL) for oid in oids]))


def set_request(pairs: list[tuple[str, Any]]) -> Request:
    return Request(SET, _var_binds([(encode_oid(oid), encode_value(v)) for oid, v in pairs]))


def bulk_request(oid: str, repetitions: int) -> Request:
    """A GETBULK for the ``repetitions`` successors of ``oid`` (no non-repeaters)."""
    return Request(GET_BULK, _var_binds([(encode_oid(oid), _NULL)]), 0, repetitions)


def response_message(
    community: bytes,
    request_id: int,
    var_binds: list[tuple[Oid, bytes]],
    error_status: int = 0,
    error_index: int = 0,
) -> bytes:
    """An agent's Response; each value already encoded (``encode_value``, an exception)."""
    pairs = [(encode_oid(oid_text(oid)), value) for oid, value in var_binds]
    response = Request(RESPONSE, _var_binds(pairs), error_status, error_index)
    return encode_message(community, response, request_id)


def encoded(tag: int, content: bytes) -> bytes:
    """A value as ``Pdu.var_binds`` carries it, encoded again (an agent's error echo)."""
    return _tlv(tag, content)


def encode_message(community: bytes, request: Request, request_id: int) -> bytes:
    pdu = (
        _integer(INTEGER, request_id)
        + _integer(INTEGER, request.second)
        + _integer(INTEGER, request.third)
        + request.var_binds
    )
    return _tlv(
        SEQUENCE,
        _integer(INTEGER, _VERSION_2C) + _tlv(OCTET_STRING, community) + _tlv(request.tag, pdu),
    )


# --- decoding ------------------------------------------------------------------------------
def _read(data: bytes, at: int, end: int) -> tuple[int, int, int]:
    """The TLV at ``at``: its tag, where its content starts and where it ends."""
    if at + 2 > end:
        raise Malformed("truncated")
    tag, size = data[at], data[at + 1]
    at += 2
    if size & 0x80:
        count = size & 0x7F
        if count == 0 or count > 4 or at + count > end:
            raise Malformed("bad length")
        size = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + size > end:
        raise Malformed("truncated")
    return tag, at, at + size


def _expect(data: bytes, at: int, end: int, tag: int) -> tuple[int, int]:
    found, start, stop = _read(data, at, end)
    if found != tag:
        raise Malformed(f"tag {found:#x} where {tag:#x} belongs")
    return start, stop


def _decode_oid(content: bytes) -> Oid:
    arcs: list[int] = []
    arc = 0
    for byte in content:
        arc = (arc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(arc)
            arc = 0
    if not arcs or content[-1] & 0x80:
        raise Malformed("bad object identifier")
    first = min(arcs[0] // 40, 2)
    return (first, arcs[0] - 40 * first, *arcs[1:])


def decode_value(tag: int, content: bytes) -> Value:
    """A value's content by its tag: a number, octets, an OID as dotted text, None (NULL or
    an exception), ``END_OF_MIB``."""
    if tag == INTEGER or tag in _UNSIGNED:
        return int.from_bytes(content, "big", signed=tag == INTEGER)
    if tag in _OCTETS:
        return content
    if tag == OBJECT_IDENTIFIER:
        return oid_text(_decode_oid(content))
    if tag in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE):
        return None
    if tag == END_OF_MIB_VIEW:
        return END_OF_MIB
    raise Malformed(f"unknown value tag {tag:#x}")


_PDU_TAGS = frozenset((GET, GET_NEXT, RESPONSE, SET, GET_BULK))


def decode_message(data: bytes) -> tuple[bytes, Pdu]:
    """An SNMPv2c message of any PDU type: its community and PDU. Raises ``Malformed``
    (an SNMPv1 or v3 message too)."""
    end = len(data)
    at, end = _expect(data, 0, end, SEQUENCE)
    start, stop = _expect(data, at, end, INTEGER)
    if int.from_bytes(data[start:stop], "big", signed=True) != _VERSION_2C:
        raise Malformed("not SNMPv2c")
    start, at = _expect(data, stop, end, OCTET_STRING)
    community = data[start:at]
    pdu_tag, at, end = _read(data, at, end)
    if pdu_tag not in _PDU_TAGS:
        raise Malformed(f"PDU type {pdu_tag:#x}")
    fields = []
    for _ in range(3):
        start, at = _expect(data, at, end, INTEGER)
        fields.append(int.from_bytes(data[start:at], "big", signed=True))
    at, end = _expect(data, at, end, SEQUENCE)
    var_binds: list[tuple[Oid, int, bytes]] = []
    while at < end:
        start, at = _expect(data, at, end, SEQUENCE)
        oid_start, oid_stop = _expect(data, start, at, OBJECT_IDENTIFIER)
        tag, value_start, value_stop = _read(data, oid_stop, at)
        oid = _decode_oid(data[oid_start:oid_stop])
        var_binds.append((oid, tag, data[value_start:value_stop]))
    return community, Pdu(pdu_tag, fields[0], fields[1], fields[2], var_binds)


def decode_response(data: bytes) -> tuple[bytes, Response]:
    """An SNMPv2c Response message: its community and PDU. Raises ``Malformed``."""
    community, pdu = decode_message(data)
    if pdu.tag != RESPONSE:
        raise Malformed(f"PDU type {pdu.tag:#x} where a Response belongs")
    values = [(oid, decode_value(tag, content)) for oid, tag, content in pdu.var_binds]
    return community, Response(pdu.request_id, pdu.second, pdu.third, values)


def oid_text(oid: Oid) -> str:
    return ".".join(map(str, oid))


def parse_oid(oid: str) -> Oid:
    return tuple(int(arc) for arc in oid.strip(".").split("."))


# --- the sockets ---------------------------------------------------------------------------
class Wire:
    """Requests over blocking UDP sockets of the calling thread (one per thread and address
    family; a forked child, or a call after ``close``, makes its own).

    A worker thread talks to its modem itself: no event loop to hand the request to and
    take the answer back from, two thread hand-offs that cost more CPU than the exchange.
    Threads block in ``recvfrom`` without the GIL, so a threads pool still overlaps its
    modems' round trips.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._generation = 0  # bumped by ``close``: every thread's sockets are then stale
        self._opened: list[socket.socket] = []
        self._opened_lock = threading.Lock()
        self._addresses: dict[tuple[str, int], Address] = {}
        self._ids = itertools.count(secrets.randbelow(_REQUEST_IDS))

    def request(
        self,
        host: str,
        port: int,
        community: str,
        request: Request,
        timeout_s: float,
        retries: int,
    ) -> Response:
        """Send ``request`` and return the answer. Sent again after each ``timeout_s``
        without one, ``retries`` times; raises ``WireTimeout`` when none came."""
        address, family = self._resolve(host, port)
        sock = self._socket(family)
        request_id = next(self._ids) % _REQUEST_IDS
        sent_community = community.encode()
        data = encode_message(sent_community, request, request_id)
        for _ in range(retries + 1):
            sock.sendto(data, address)
            deadline = time.monotonic() + timeout_s
            response = _answer(sock, address, sent_community, request_id, deadline)
            if response is not None:
                return response
        raise WireTimeout(f"no SNMP answer from {host}:{port} in {retries + 1} tries")

    def close(self) -> None:
        """Close every thread's sockets; the next request opens new ones."""
        with self._opened_lock:
            self._generation += 1
            opened, self._opened = self._opened, []
        for sock in opened:
            sock.close()

    def _socket(self, family: int) -> socket.socket:
        local = self._local
        if getattr(local, "owner", None) != (os.getpid(), self._generation):
            local.owner, local.sockets = (os.getpid(), self._generation), {}
        sockets: dict[int, socket.socket] = local.sockets
        sock = sockets.get(family)
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            sockets[family] = sock
            with self._opened_lock:
                self._opened.append(sock)
        return sock

    def _resolve(self, host: str, port: int) -> tuple[Address, int]:
        """``(host, port)`` as the kernel reports the source of an answer (an address
        literal in its canonical form), and its family. A host name is resolved over IPv4
        once and remembered."""
        key = (host, port)
        address = self._addresses.get(key)
        if address is None:
            try:
                literal = ipaddress.ip_address(host)
            except ValueError:
                infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
                literal = ipaddress.ip_address(infos[0][4][0])
            if len(self._addresses) >= _ADDRESS_CACHE_SIZE:
                self._addresses.clear()
            address = self._addresses[key] = (literal.compressed, port)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        return address, family


def _answer(
    sock: socket.socket, address: Address, community: bytes, request_id: int, deadline: float
) -> Response | None:
    """The answer to ``request_id`` from ``address`` with ``community``, or None at
    ``deadline``. Whatever else arrives meanwhile is dropped: a late answer to an earlier
    request of this thread, another agent's, a stray datagram."""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, source = sock.recvfrom(_MAX_DATAGRAM)
        except TimeoutError:
            return None
        except ConnectionRefusedError:
            continue  # an ICMP port unreachable: wait out the timeout, as for a silent agent
        try:
            answer_community, response = decode_response(data)
        except (Malformed, ValueError, IndexError):
            continue  # not an SNMPv2c answer
        if (
            response.request_id == request_id
            and (source[0], source[1]) == address
            and answer_community == community
        ):
            return response
    return None
