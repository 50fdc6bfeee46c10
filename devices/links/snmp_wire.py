"""SNMPv2c request/response over one UDP socket per address family, without pysnmp's engine.

Why: pysnmp's command generator keeps a target-address row per agent address in its
engine, and every row added or dropped makes the engine rebuild a map over all rows on the
next message it receives (``SnmpV1SecurityModel._com2sec``). A fleet of distinct modems
(a campaign, a busy pipeline) pays that on nearly every answer. Measured on this project's
2-core machine, 1,000 simulated modems: the engine took 19.6 ms of CPU per first GET to a
modem and 1.4 ms per GET to a known one; this path 0.7 and 0.6 ms (``docs/benchmarks.md``).

v2c carries no security state: a message is the community and a PDU, and an answer is
matched to its request by request-id and by the address it came from. So this module only
builds, sends and matches messages (BER by pysnmp's own message classes); timeouts,
retries and answers that are not ours are handled here, SNMP error statuses and value
conversion by ``devices.links.snmp``. SNMPv3 (USM) stays on the engine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import secrets
import socket
from typing import Any, cast

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pysnmp.proto.api import v2c

Address = tuple[str, int]
_RESPONSE_TAGS = v2c.ResponsePDU.tagSet
_VERSION_2C = 1  # the message's version field for SNMPv2c
_REQUEST_IDS = 2**31  # request-id is an Integer32: stay positive
_ADDRESS_CACHE_SIZE = 4096


class WireTimeout(TimeoutError):
    """No matching answer within the timeout of every try."""


class _Endpoint(asyncio.DatagramProtocol):
    """One socket; answers go to the request waiting for their request-id, if they come
    from the address that request went to with its community."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, tuple[Address, bytes, asyncio.Future[Any]]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            message, _ = decoder.decode(data, asn1Spec=v2c.Message())
            pdu = v2c.apiMessage.get_pdu(message)
            if int(v2c.apiMessage.get_version(message)) != _VERSION_2C:
                return
            if pdu.tagSet != _RESPONSE_TAGS:
                return
            request_id = int(v2c.apiPDU.get_request_id(pdu))
            community = bytes(v2c.apiMessage.get_community(message))
        except (PyAsn1Error, ValueError, TypeError):
            return  # not an SNMPv2c answer: not ours
        waiting = self.waiting.get(request_id)
        if waiting is None:
            return  # a late answer to a request given up, or a stray datagram
        address, sent_community, future = waiting
        if (addr[0], addr[1]) == address and community == sent_community and not future.done():
            future.set_result(pdu)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error (port unreachable): the request waiting for it times out, as with
        a silent agent."""


class Wire:
    """The sockets of one event loop. Every method runs on that loop."""

    def __init__(self) -> None:
        self._endpoints: dict[int, _Endpoint] = {}
        self._addresses: dict[tuple[str, int], Address] = {}
        self._ids = itertools.count(secrets.randbelow(_REQUEST_IDS))

    async def request(
        self,
        host: str,
        port: int,
        community: str,
        pdu: Any,
        timeout_s: float,
        retries: int,
    ) -> Any:
        """Send ``pdu`` (a request PDU of ``get_pdu``/``set_pdu``/``bulk_pdu``) and return
        the response PDU. Sent again after each ``timeout_s`` without an answer, ``retries``
        times; raises ``WireTimeout`` when none came."""
        address, family = await self._resolve(host, port)
        endpoint = await self._endpoint(family)
        request_id = next(self._ids) % _REQUEST_IDS
        v2c.apiPDU.set_request_id(pdu, request_id)
        message = v2c.Message()
        v2c.apiMessage.set_defaults(message)
        v2c.apiMessage.set_community(message, community)
        v2c.apiMessage.set_pdu(message, pdu)
        data = encoder.encode(message)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        endpoint.waiting[request_id] = (address, community.encode(), future)
        try:
            for _ in range(retries + 1):
                assert endpoint.transport is not None
                endpoint.transport.sendto(data, address)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), timeout_s)
                except TimeoutError:
                    continue
        finally:
            del endpoint.waiting[request_id]
            future.cancel()
        raise WireTimeout(f"no SNMP answer from {host}:{port} in {retries + 1} tries")

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            if endpoint.transport is not None:
                endpoint.transport.close()
        self._endpoints.clear()

    async def _endpoint(self, family: int) -> _Endpoint:
        endpoint = self._endpoints.get(family)
        if endpoint is None:
            anywhere = (
                "::" if family == socket.AF_INET6 else "0.0.0.0"
            )  # a client socket: answers come to it
            _, endpoint = await asyncio.get_running_loop().create_datagram_endpoint(
                _Endpoint, local_addr=(anywhere, 0), family=family
            )
            self._endpoints[family] = endpoint
        return endpoint

    async def _resolve(self, host: str, port: int) -> tuple[Address, int]:
        """``(host, port)`` as the kernel reports the source of an answer (an address
        literal in its canonical form), and its family. A host name is resolved over IPv4
        once and remembered."""
        key = (host, port)
        address = self._addresses.get(key)
        if address is None:
            try:
                literal = ipaddress.ip_address(host)
            except ValueError:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
                )
                literal = ipaddress.ip_address(infos[0][4][0])
            if len(self._addresses) >= _ADDRESS_CACHE_SIZE:
                self._addresses.clear()
            address = self._addresses[key] = (literal.compressed, port)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        return address, family


def get_pdu(oids: list[Any]) -> Any:
    """A GetRequest for ``oids`` (``v2c.ObjectIdentifier``)."""
    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_varbinds(pdu, [(oid, v2c.null) for oid in oids])
    return pdu


def set_pdu(var_binds: list[tuple[Any, Any]]) -> Any:
    """A SetRequest of ``(ObjectIdentifier, value)`` pairs (values of ``v2c``'s types)."""
    pdu = v2c.SetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_varbinds(pdu, var_binds)
    return pdu


def bulk_pdu(oid: Any, repetitions: int) -> Any:
    """A GetBulkRequest for the ``repetitions`` successors of ``oid``."""
    pdu = v2c.GetBulkRequestPDU()
    v2c.apiBulkPDU.set_defaults(pdu)
    v2c.apiBulkPDU.set_non_repeaters(pdu, 0)
    v2c.apiBulkPDU.set_max_repetitions(pdu, repetitions)
    v2c.apiBulkPDU.set_varbinds(pdu, [(oid, v2c.null)])
    return pdu


def answer(pdu: Any) -> tuple[None, Any, Any, list[tuple[Any, Any]]]:
    """A response PDU as pysnmp's commands return it: no error indication, the error
    status and index, and the ``(oid, value)`` pairs."""
    return (
        None,
        v2c.apiPDU.get_error_status(pdu),
        v2c.apiPDU.get_error_index(pdu, muteErrors=True),
        list(v2c.apiPDU.get_varbinds(pdu)),
    )
