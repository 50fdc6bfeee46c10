"""The v2c wire against a hand-rolled agent on loopback: answers are taken only from the
agent asked, for the request asked, with its community; a lost request is sent again."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto.api import v2c

from devices.links.snmp import SnmpClient, SnmpTarget, SnmpTimeout

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
# What the agent does with the n-th request it receives (0-based) and its source address:
# returns the datagrams to send back, each with the socket to send it from.
Behaviour = Callable[[int, bytes, Any], list[tuple[bytes, socket.socket | None]]]


def reply(request: bytes, *, request_id: int | None = None, community: str | None = None) -> bytes:
    """The agent's answer to ``request``: sysDescr "wire", optionally tampered with."""
    message, _ = decoder.decode(request, asn1Spec=v2c.Message())
    pdu = v2c.apiMessage.get_pdu(message)
    answer = v2c.apiMessage.get_response(message)
    response = v2c.apiPDU.get_response(pdu)
    v2c.apiPDU.set_varbinds(response, [(v2c.ObjectIdentifier(SYS_DESCR), v2c.OctetString(b"wire"))])
    if request_id is not None:
        v2c.apiPDU.set_request_id(response, request_id)
    if community is not None:
        v2c.apiMessage.set_community(answer, community)
    v2c.apiMessage.set_pdu(answer, response)
    return bytes(encoder.encode(answer))


class Agent:
    """A UDP agent on 127.0.0.1 (port 0) run by ``behaviour``, in a thread."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a second source
        self.other.bind(("127.0.0.1", 0))
        self.behaviour = behaviour
        self.received = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.received += 1  # before answering: the client may read it at once
            for datagram, via in self.behaviour(self.received - 1, data, source):
                (via or self.sock).sendto(datagram, source)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        self.sock.close()
        self.other.close()


@pytest.fixture
def client() -> Iterator[SnmpClient]:
    own = SnmpClient()
    yield own
    own.close()


def target(agent: Agent, community: str = "public") -> SnmpTarget:
    return SnmpTarget("127.0.0.1", agent.port, community=community, timeout_s=0.3, retries=1)


def run(behaviour: Behaviour, client: SnmpClient) -> tuple[list[Any] | None, int, float]:
    """GET sysDescr from an agent that behaves so: the values (None after a timeout), how
    many requests the agent saw and how long the GET took."""
    agent = Agent(behaviour)
    started = time.monotonic()
    try:
        try:
            values: list[Any] | None = client.get(target(agent), SYS_DESCR)
        except SnmpTimeout:
            values = None
        return values, agent.received, time.monotonic() - started
    finally:
        agent.stop()


def test_an_honest_agent_is_answered_once(client: SnmpClient) -> None:
    values, received, _ = run(lambda n, data, source: [(reply(data), None)], client)
    assert (values, received) == ([b"wire"], 1)


def test_a_lost_request_is_sent_again_and_its_answer_taken(client: SnmpClient) -> None:
    values, received, elapsed = run(
        lambda n, data, source: [] if n == 0 else [(reply(data), None)], client
    )
    assert (values, received) == ([b"wire"], 2)
    assert elapsed >= 0.3  # the first try's whole timeout passed


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda agent, data: [(reply(data), agent.other)], id="from-another-port"),
        pytest.param(lambda agent, data: [(reply(data, request_id=1), None)], id="other-request"),
        pytest.param(
            lambda agent, data: [(reply(data, community="x"), None)], id="other-community"
        ),
        pytest.param(lambda agent, data: [(b"\x30\x03\x02\x01\x01", None)], id="garbage"),
    ],
)
def test_answers_not_to_our_request_are_ignored(
    client: SnmpClient, tamper: Callable[[Agent, bytes], list[tuple[bytes, Any]]]
) -> None:
    """Every try gets only a wrong answer: the GET times out after both tries, no value of
    a stray datagram is taken."""
    holder: list[Agent] = []

    def behaviour(n: int, data: bytes, source: Any) -> list[tuple[bytes, Any]]:
        return tamper(holder[0], data)

    agent = Agent(behaviour)
    holder.append(agent)
    try:
        with pytest.raises(SnmpTimeout):
            client.get(target(agent), SYS_DESCR)
        assert agent.received == 2
        # The same client then takes an honest answer (nothing left half-waiting).
        agent.behaviour = lambda n, data, source: [(reply(data), None)]
        assert client.get(target(agent), SYS_DESCR) == [b"wire"]
    finally:
        agent.stop()


def test_a_stray_answer_before_the_real_one_does_not_win(client: SnmpClient) -> None:
    """A forged answer (another source) arrives first, then the agent's own."""
    holder: list[Agent] = []

    def behaviour(n: int, data: bytes, source: Any) -> list[tuple[bytes, Any]]:
        forged = reply(data).replace(b"wire", b"evil")
        return [(forged, holder[0].other), (reply(data), None)]

    agent = Agent(behaviour)
    holder.append(agent)
    try:
        assert client.get(target(agent), SYS_DESCR) == [b"wire"]
    finally:
        agent.stop()
