"""The v2c wire's exchanges from the calling thread, against a small agent on 127.0.0.1: a
silent agent costs the timeout of each try, a late answer is not taken for the next
request, threads never get each other's answers. (Stray answers through the client:
``test_links_snmp_wire``.)"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from devices.links import snmp_wire
from devices.links.snmp_wire import Wire, WireTimeout

OID = "1.3.6.1.2.1.1.5.0"
Reply = Callable[[socket.socket, bytes, tuple, bytes, snmp_wire.Pdu], None]


class Agent:
    """A UDP agent on a free port that calls ``reply`` for each request it gets."""

    def __init__(self, reply: Reply) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._reply = reply
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.requests += 1
            community, pdu = snmp_wire.decode_message(data)
            self._reply(self.sock, data, source, community, pdu)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def answer(community: bytes, request_id: int, text: bytes) -> bytes:
    value = snmp_wire.encode_value(text)
    return snmp_wire.response_message(community, request_id, [(snmp_wire.parse_oid(OID), value)])


@pytest.fixture
def agent() -> Iterator[Callable[[Reply], Agent]]:
    started: list[Agent] = []

    def start(reply: Reply) -> Agent:
        started.append(Agent(reply))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def test_a_silent_agent_costs_the_timeout_of_each_try(agent) -> None:
    silent = agent(lambda *_: None)
    started = time.monotonic()

    with pytest.raises(WireTimeout):
        Wire().request("127.0.0.1", silent.port, "c", snmp_wire.get_request([OID]), 0.3, 2)

    assert 0.9 <= time.monotonic() - started < 1.5
    assert silent.requests == 3  # the first send and two retries


def test_a_late_answer_to_a_given_up_request_is_not_taken_for_the_next() -> None:
    """The agent answers the first request only after its one try has timed out; that
    answer reaches the thread's socket while it waits for the second."""

    def slow_then_prompt(sock, _data, source, community, pdu) -> None:
        if pdu.request_id == 7:
            time.sleep(0.4)
        sock.sendto(answer(community, pdu.request_id, str(pdu.request_id).encode()), source)

    wire = Wire()
    wire._ids = iter([7, 8])  # type: ignore[assignment]  # known ids, in order
    slow = Agent(slow_then_prompt)
    try:
        with pytest.raises(WireTimeout):
            wire.request("127.0.0.1", slow.port, "c", snmp_wire.get_request([OID]), 0.2, 0)
        second = wire.request("127.0.0.1", slow.port, "c", snmp_wire.get_request([OID]), 2, 0)
    finally:
        slow.stop()

    assert [value for _, value in second.var_binds] == [b"8"]


def test_threads_get_their_own_answers_and_close_opens_afresh(agent) -> None:
    def echo(sock, data, source, community, pdu) -> None:
        name = snmp_wire.oid_text(pdu.var_binds[0][0]).encode()
        sock.sendto(answer(community, pdu.request_id, name), source)

    port = agent(echo).port
    wire = Wire()
    wrong: list[tuple[str, object]] = []

    def ask(thread: int) -> None:
        for n in range(25):
            oid = f"1.3.6.1.4.1.{thread}.{n}"
            response = wire.request("127.0.0.1", port, "c", snmp_wire.get_request([oid]), 2, 1)
            if response.var_binds[0][1] != oid.encode():
                wrong.append((oid, response.var_binds[0][1]))

    threads = [threading.Thread(target=ask, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert wrong == []
    wire.close()
    again = wire.request("127.0.0.1", port, "c", snmp_wire.get_request([OID]), 2, 0)
    assert again.var_binds[0][1] == OID.encode()
