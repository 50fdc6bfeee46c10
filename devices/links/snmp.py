"""A thin synchronous SNMP client: v2c straight over UDP, v3 over the pysnmp 7 asyncio
manager API.

v2c requests (what modems speak) bypass the engine and any event loop: the calling thread
sends and matches the messages itself (``devices.links.snmp_wire``, a blocking socket per
thread, each try bounded by the target's timeout), without the engine's per-address rows,
whose upkeep cost a fleet of distinct modems most of its SNMP CPU, and without handing each
request to a loop thread and the answer back (see that module). Requests of many threads
are in flight at once (a ``threads`` worker pool overlaps its modems' round trips).

v3 goes through pysnmp's engine. A ``SnmpEngine`` is bound to the event loop that created
it (pysnmp #237/#64), and creating one costs ~0.2 s and ~1 MiB. So each process keeps ONE
private event loop, running in its own daemon thread, and ONE engine, created lazily on
first use and closed with ``close()`` (a Celery worker does that at shutdown). Sync callers,
from any thread, hand coroutines to that loop and wait for the answer; we never
``asyncio.run`` per call. Every such call is wrapped in ``asyncio.wait_for`` so a hang can
never block a caller for longer than the target's own timeout budget.

SNMPv3 keys are kept per modem: USM user entries are keyed by (engine ID, user name), and
pysnmp's default (no engine ID given) is one local entry per user name that it copies for
each agent on first contact. Two modems sharing a user name with different keys would then
use whichever keys were configured last. So the client learns each agent's engine ID once
(a probe with a key-less user) and always names it: every modem gets its own entry, and
a key change replaces only that modem's.

Values come back as plain Python: ``int`` for every integer type, ``bytes`` for octet
strings (IpAddress included), ``str`` for OIDs and ``None`` for noSuchObject/noSuchInstance.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal, TypeVar, cast

from pyasn1.type import univ
from pysnmp.entity import config
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_AUTH_NONE,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CBC168_3DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES,
    USM_PRIV_CFB256_AES,
    USM_PRIV_NONE,
    CommunityData,
    ContextData,
    EndOfMibView,
    Integer32,
    NoSuchInstance,
    NoSuchObject,
    ObjectIdentity,
    ObjectType,
    OctetString,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_walk_cmd,
    get_cmd,
    set_cmd,
)
from pysnmp.proto import errind
from pysnmp.proto.mpmod.rfc3412 import SnmpV3MessageProcessingModel

from devices.links import snmp_wire

Value = int | bytes | str | None
T = TypeVar("T")

AUTH_PROTOCOLS = {
    "NONE": USM_AUTH_NONE,
    "MD5": USM_AUTH_HMAC96_MD5,
    "SHA": USM_AUTH_HMAC96_SHA,
    "SHA224": USM_AUTH_HMAC128_SHA224,
    "SHA256": USM_AUTH_HMAC192_SHA256,
    "SHA384": USM_AUTH_HMAC256_SHA384,
    "SHA512": USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS = {
    "NONE": USM_PRIV_NONE,
    "DES": USM_PRIV_CBC56_DES,
    "3DES": USM_PRIV_CBC168_3DES,
    "AES": USM_PRIV_CFB128_AES,
    "AES192": USM_PRIV_CFB192_AES,
    "AES256": USM_PRIV_CFB256_AES,
}
MAX_WALK_ROWS = 10_000
WALK_REPETITIONS = 25
_TARGET_CACHE_SIZE = 1024
_LCD_CACHE = "CommandGeneratorLcdConfigurator"  # pysnmp's name for its per-engine target rows
_IDENTITY_CACHE_SIZE = 4096
_CLOSE_TIMEOUT_S = 5.0
_HANDOFF_SLACK_S = 1.0  # past the wait_for budget: the loop thread itself is stuck
# Key-less user of the engine-ID probe: the agent answers it with a report that carries
# its engine ID (usually "unknown user name"), and it holds no secret to mix up.
_PROBE_USER = "fieldrelay-engine-id-probe"
_PROBE_OID = "1.3.6.1.2.1.1.1.0"  # sysDescr
# An agent's answer meaning our idea of its engine ID may be stale (modem replaced).
_STALE_ENGINE = ("unknownSecurityName", "unknownEngineID", "unknownUserName")


class SnmpError(Exception):
    """Any SNMP failure."""


class SnmpTimeout(SnmpError):
    """No answer within the target's timeout and retries: transient, worth a retry."""


class SnmpRejected(SnmpError):
    """The agent (or the v3 security layer) refused the request; retrying will not help.

    ``status`` is the SNMP error-status name (``inconsistentValue``, ``notWritable``,
    ``authorizationError`` ...) or the USM/engine error indication (``wrongDigest``,
    ``unknownUserName`` ...); ``oid`` names the offending variable when the agent said.
    """

    def __init__(self, status: str, oid: str | None = None) -> None:
        super().__init__(f"{status} ({oid})" if oid else status)
        self.status = status
        self.oid = oid


@dataclass(frozen=True)
class SnmpTarget:
    """Where and how to reach one agent. Secrets never appear in ``repr``.

    ``version`` "2c" uses ``community``; "3" uses USM ``user`` with ``auth_key``/``priv_key``
    and ``auth_protocol`` (a key of ``AUTH_PROTOCOLS``) / ``priv_protocol`` (of
    ``PRIV_PROTOCOLS``). Empty keys mean noAuth / noPriv.
    """

    host: str
    port: int = 161
    version: Literal["2c", "3"] = "2c"
    community: str = field(default="", repr=False)
    user: str = ""
    auth_key: str = field(default="", repr=False)
    priv_key: str = field(default="", repr=False)
    auth_protocol: str = "SHA"
    priv_protocol: str = "AES"
    timeout_s: float = 2.0
    retries: int = 1

    def __post_init__(self) -> None:
        if self.version not in ("2c", "3"):
            raise ValueError(f"unsupported SNMP version {self.version!r}")
        if self.auth_protocol.upper() not in AUTH_PROTOCOLS:
            raise ValueError(f"unknown auth protocol {self.auth_protocol!r}")
        if self.priv_protocol.upper() not in PRIV_PROTOCOLS:
            raise ValueError(f"unknown priv protocol {self.priv_protocol!r}")

    @property
    def budget_s(self) -> float:
        """The longest one request may take: every try times out, plus slack."""
        return self.timeout_s * (self.retries + 1) + 1.0

    def auth_data(self, engine_id: bytes | None = None) -> CommunityData | UsmUserData:
        """v3: the user's entry for the agent ``engine_id`` (see the module docstring)."""
        if self.version == "2c":
            return CommunityData(self.community, mpModel=1)  # noqa: S508 - modems speak v2c
        auth = AUTH_PROTOCOLS[self.auth_protocol.upper()] if self.auth_key else USM_AUTH_NONE
        priv = PRIV_PROTOCOLS[self.priv_protocol.upper()] if self.priv_key else USM_PRIV_NONE
        return UsmUserData(
            self.user,
            authKey=self.auth_key or None,
            privKey=self.priv_key or None,
            authProtocol=auth,
            privProtocol=priv,
            securityEngineId=None if engine_id is None else OctetString(engine_id),
        )


def is_ipv6(host: str) -> bool:
    """Whether ``host`` is an IPv6 literal (a host name is resolved over IPv4, as before)."""
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def to_python(value: Any) -> Value:
    """An SNMP value as plain Python (see the module docstring)."""
    if isinstance(value, NoSuchObject | NoSuchInstance | EndOfMibView):
        return None
    if isinstance(value, univ.Integer):
        return int(value)
    if isinstance(value, univ.OctetString):
        return bytes(value)
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    text: str = value.prettyPrint()
    return text


def to_snmp(value: Any) -> Any:
    """``int`` → Integer32, ``bytes``/``str`` → OctetString; pysnmp values pass through."""
    if isinstance(value, bool):
        raise TypeError("use 1/2 (TruthValue) rather than a Python bool")
    if isinstance(value, int):
        return Integer32(value)
    if isinstance(value, bytes | str):
        return OctetString(value)
    return value


def _error_status_name(status: int) -> str:
    names = snmp_wire.ERROR_STATUSES
    return names[status] if 0 <= status < len(names) else f"error {status}"


def _check(error_indication: Any, error_status: Any, error_index: Any, var_binds: Any) -> None:
    if error_indication:
        if isinstance(error_indication, errind.RequestTimedOut):
            raise SnmpTimeout(str(error_indication))
        raise SnmpRejected(str(error_indication))
    if error_status and int(error_status):
        oid = None
        if error_index and 0 < int(error_index) <= len(var_binds):
            oid = str(var_binds[int(error_index) - 1][0])
        raise SnmpRejected(error_status.prettyPrint(), oid)


class SnmpClient:
    """One engine and one event loop (in its own thread) for this process; sync ``get``/
    ``set``/``walk`` from any thread.

    Fork-safe: a child process builds its own engine, loop and thread on first use.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards start and close, not the calls
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: SnmpEngine | None = None
        # Least recently used first. ``_busy``: requests in flight per target (loop thread).
        self._targets: OrderedDict[TargetKey, UdpTransportTarget | Udp6TransportTarget] = (
            OrderedDict()
        )
        self._busy: Counter[TargetKey] = Counter()
        self._identities: dict[str, ObjectIdentity] = {}
        self._wire = snmp_wire.Wire()  # v2c, in the calling thread
        self._engine_ids: dict[tuple[str, int], bytes] = {}  # v3 agents' engine IDs

    # --- public API --------------------------------------------------------------------
    def get(self, target: SnmpTarget, *oids: str) -> list[Value]:
        """GET ``oids`` in one PDU; values in the same order."""
        if target.version == "2c":
            return self._exchange(target, snmp_wire.get_request(list(oids)))
        return self._request(get_cmd, target, [ObjectType(self._identity(oid)) for oid in oids])

    def set(self, target: SnmpTarget, *pairs: tuple[str, Any]) -> list[Value]:
        """SET ``(oid, value)`` pairs in one PDU; returns the values the agent echoed."""
        if target.version == "2c":
            return self._exchange(target, snmp_wire.set_request(list(pairs)))
        var_binds = [ObjectType(self._identity(oid), to_snmp(value)) for oid, value in pairs]
        return self._request(set_cmd, target, var_binds)

    def walk(
        self, target: SnmpTarget, oid: str, max_rows: int = MAX_WALK_ROWS
    ) -> list[tuple[str, Value]]:
        """All ``(oid, value)`` rows under ``oid`` (GETBULK), at most ``max_rows``."""
        if target.version == "2c":
            return self._walk_v2c(target, oid, max_rows)

        async def run() -> list[tuple[str, Value]]:
            rows: list[tuple[str, Value]] = []
            engine = self._engine_here()
            transport = await self._transport(target)
            async for result in bulk_walk_cmd(
                engine,
                await self._auth_data(engine, target, transport),
                transport,
                ContextData(),
                0,
                WALK_REPETITIONS,
                ObjectType(ObjectIdentity(oid)),
                lookupMib=False,
                lexicographicMode=False,
                maxRows=max_rows,
            ):
                _check(*result)
                rows.extend((str(name), to_python(value)) for name, value in result[3])
            return rows

        # A walk is several round trips: allow a budget per expected page.
        return self._call(target, run, pages=1 + max_rows // WALK_REPETITIONS)

    def close(self) -> None:
        """Close the v2c sockets and the engine's dispatcher, stop the loop and its thread;
        the next call starts afresh."""
        self._wire.close()
        with self._lock:
            if self._pid != os.getpid():
                self._forget()
                return
            loop, thread, engine = self._loop, self._thread, self._engine
            if loop is not None and not loop.is_closed() and thread is not None:
                shut_down = _shut_down(engine)
                asyncio.run_coroutine_threadsafe(shut_down, loop).result(_CLOSE_TIMEOUT_S)
                loop.call_soon_threadsafe(loop.stop)
                thread.join(_CLOSE_TIMEOUT_S)
                loop.close()
            self._forget()

    # --- internals -----------------------------------------------------------------------
    def _identity(self, oid: str) -> ObjectIdentity:
        """The ObjectIdentity of ``oid``, shared between requests: pysnmp resolves each one
        against the MIB tree once (its first use marks it clean), which would otherwise be
        ~40 % of the CPU of a GET."""
        identity = self._identities.get(oid)
        if identity is None:
            if len(self._identities) >= _IDENTITY_CACHE_SIZE:
                self._identities.clear()
            identity = self._identities[oid] = ObjectIdentity(oid)
        return identity

    def _exchange(self, target: SnmpTarget, request: snmp_wire.Request) -> list[Value]:
        """One v2c request/response (GET or SET) over the wire, in the calling thread."""
        response = self._send(target, request)
        return [
            None if value is snmp_wire.END_OF_MIB else cast(Value, value) for _, value in response
        ]

    def _send(
        self, target: SnmpTarget, request: snmp_wire.Request
    ) -> list[tuple[snmp_wire.Oid, snmp_wire.Value]]:
        """The answer's ``(oid, value)`` pairs; its error status raised as ``SnmpRejected``."""
        try:
            response = self._wire.request(
                target.host,
                target.port,
                target.community,
                request,
                target.timeout_s,
                target.retries,
            )
        except snmp_wire.WireTimeout as exc:
            raise SnmpTimeout(str(exc)) from exc
        except OSError as exc:  # the socket's own trouble (no route, a bad address)
            raise SnmpError(f"{type(exc).__name__}: {exc}") from exc
        if response.error_status:
            index = response.error_index
            oid = None
            if 0 < index <= len(response.var_binds):
                oid = snmp_wire.oid_text(response.var_binds[index - 1][0])
            raise SnmpRejected(_error_status_name(response.error_status), oid)
        return response.var_binds

    def _walk_v2c(self, target: SnmpTarget, oid: str, max_rows: int) -> list[tuple[str, Value]]:
        """GETBULK pages from ``oid`` until a row leaves its subtree (or the MIB ends)."""
        root = snmp_wire.parse_oid(oid)
        rows: list[tuple[str, Value]] = []
        after = root
        while len(rows) < max_rows:
            request = snmp_wire.bulk_request(snmp_wire.oid_text(after), WALK_REPETITIONS)
            page = self._send(target, request)
            for name, value in page:
                if value is snmp_wire.END_OF_MIB or name[: len(root)] != root:
                    return rows
                if name <= after:  # a broken agent would walk us in circles
                    raise SnmpRejected("walk went backwards", snmp_wire.oid_text(name))
                rows.append((snmp_wire.oid_text(name), cast(Value, value)))
                after = name
                if len(rows) >= max_rows:
                    break
            if not page:
                break
        return rows

    def _request(
        self, command: Any, target: SnmpTarget, var_binds: list[ObjectType]
    ) -> list[Value]:
        """One request/response PDU (GET or SET) through the engine (v3)."""

        async def run() -> list[Value]:
            engine = self._engine_here()
            transport = await self._transport(target)
            result = await command(
                engine,
                await self._auth_data(engine, target, transport),
                transport,
                ContextData(),
                *var_binds,
                lookupMib=False,
            )
            _check(*result)
            return [to_python(value) for _, value in result[3]]

        return self._call(target, run)

    def _forget(self) -> None:
        self._pid = None
        self._loop = None
        self._thread = None
        self._engine = None
        self._targets.clear()
        self._identities.clear()  # resolved against the old engine's MIB view
        self._engine_ids.clear()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if self._pid == os.getpid() and loop is not None:
            return loop
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                # After a fork the parent's loop thread does not exist here: start afresh.
                self._forget()
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="snmp-client-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                self._pid = os.getpid()
            return self._loop

    def _engine_here(self) -> SnmpEngine:
        """The engine, made on first use inside the loop it is bound to (loop thread)."""
        if self._engine is None:
            self._engine = SnmpEngine()
        return self._engine

    async def _transport(self, target: SnmpTarget) -> UdpTransportTarget | Udp6TransportTarget:
        key = _target_key(target)
        transport = self._targets.pop(key, None)
        if transport is None:
            kind = Udp6TransportTarget if is_ipv6(target.host) else UdpTransportTarget
            transport = await kind.create(
                (target.host, target.port), timeout=target.timeout_s, retries=target.retries
            )
        self._targets[key] = transport  # most recently used last
        self._forget_idle_targets()
        return transport

    def _forget_idle_targets(self) -> None:
        """Beyond ``_TARGET_CACHE_SIZE``, drop the least recently used targets with no
        request in flight, and their target-address rows in the engine: pysnmp adds a row
        per new address and never removes one (about 20 KB each; a campaign over 100,000
        modems would keep 2 GB per process). Runs on the loop thread, as engine calls do."""
        excess = len(self._targets) - _TARGET_CACHE_SIZE
        if excess <= 0:
            return
        idle = list(islice((key for key in self._targets if not self._busy[key]), excess))
        engine = self._engine
        lcd = engine.get_user_context(_LCD_CACHE) if engine is not None else None
        rows: dict[tuple[Any, ...], tuple[str, int]] = lcd["addr"] if lcd else {}
        for key in idle:
            address = self._targets.pop(key).transport_address
            for row in [row for row in rows if row[2] == address]:
                config.delete_target_address(engine, rows.pop(row)[0])

    async def _auth_data(
        self,
        engine: SnmpEngine,
        target: SnmpTarget,
        transport: UdpTransportTarget | Udp6TransportTarget,
    ) -> CommunityData | UsmUserData:
        """The target's credentials; for v3 bound to its agent's engine ID."""
        if target.version != "3":
            return target.auth_data()
        key = (target.host, target.port)
        engine_id = self._engine_ids.get(key)
        if engine_id is None:
            engine_id = self._engine_ids[key] = await _discover_engine_id(engine, transport)
        return target.auth_data(engine_id)

    def _forget_engine_id(self, target: SnmpTarget) -> None:
        """Learn the agent's engine ID afresh next time (it may be another agent now)."""
        self._engine_ids.pop((target.host, target.port), None)

    def _call(
        self,
        target: SnmpTarget,
        run: Callable[[], Awaitable[T]],
        pages: int = 1,
    ) -> T:
        loop = self._ensure()
        budget = target.budget_s * pages
        key = _target_key(target)

        async def tracked() -> T:  # a target with a request in flight keeps its rows
            self._busy[key] += 1
            try:
                return await run()
            finally:
                self._busy[key] -= 1
                if not self._busy[key]:
                    del self._busy[key]

        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(tracked(), budget), loop)
        try:
            return future.result(budget + _HANDOFF_SLACK_S)
        except (TimeoutError, concurrent.futures.TimeoutError) as exc:
            future.cancel()
            raise SnmpTimeout(f"no answer from {target.host}:{target.port}") from exc
        except SnmpRejected as exc:
            if target.version == "3" and exc.status in _STALE_ENGINE:
                self._forget_engine_id(target)
            raise
        except SnmpError:
            raise
        except Exception as exc:
            raise SnmpError(f"{type(exc).__name__}: {exc}") from exc


async def _discover_engine_id(
    engine: SnmpEngine, transport: UdpTransportTarget | Udp6TransportTarget
) -> bytes:
    """The agent's snmpEngineID, learned by pysnmp's discovery step (RFC 3414 4) on a
    request of a key-less probe user, which the agent refuses."""
    result = await get_cmd(
        engine,
        UsmUserData(_PROBE_USER),  # noqa: S509 - carries no data, only asks for the ID
        transport,
        ContextData(),
        ObjectType(ObjectIdentity(_PROBE_OID)),
        lookupMib=False,
    )
    processing = engine.message_processing_subsystems[
        SnmpV3MessageProcessingModel.MESSAGE_PROCESSING_MODEL_ID
    ]
    engine_id, _, _ = processing.get_peer_engine_info(
        transport.TRANSPORT_DOMAIN, transport.transport_address
    )
    if not engine_id:
        _check(*result)  # no answer at all: the timeout (or whatever it was) says so
        raise SnmpRejected("engine ID discovery failed")
    return bytes(engine_id)


async def _shut_down(engine: SnmpEngine | None) -> None:
    """On the loop: cancel what is still running, close the engine's sockets."""
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
    if engine is not None:
        engine.close_dispatcher()


_client: SnmpClient | None = None
_client_lock = threading.Lock()


def client() -> SnmpClient:
    """The per-process client (see the module docstring for why there is only one)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = SnmpClient()
        return _client


def oid_suffix(oid: str, prefix: str) -> tuple[int, ...]:
    """The index part of ``oid`` below ``prefix`` (e.g. a table row's ifIndex)."""
    head = prefix.rstrip(".") + "."
    if not oid.startswith(head):
        raise ValueError(f"{oid} is not under {prefix}")
    return tuple(int(part) for part in oid[len(head) :].split("."))


TargetKey = tuple[str, int, float, int]


def _target_key(target: SnmpTarget) -> TargetKey:
    """What pysnmp keys a target-address row by (besides the credentials' parameters)."""
    return (target.host, target.port, target.timeout_s, target.retries)


def values_by_suffix(rows: Iterable[tuple[str, Value]], prefix: str) -> dict[int, Value]:
    """Walk rows of a single-index column as ``{index: value}``."""
    return {oid_suffix(oid, prefix)[-1]: value for oid, value in rows}
