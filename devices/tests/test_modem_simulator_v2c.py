"""The simulated modems answer SNMPv2c without pysnmp's engine (``simulators.modem``): the
same requests, as bytes on the wire, get the same answers as from the engine, which still
answers v3 (and v2c with ``v2c_via_engine``)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
from pysnmp.proto.api import v2c

from devices.links import pnm, snmp_wire
from devices.links.pnm import PnmTest
from devices.links.snmp import client
from simulators.modem import Failure, ModemFarm

RXMER = PnmTest.RXMER
SILENT, OTHER_COMMUNITY = 1, 2


def running_farm(*, via_engine: bool) -> ModemFarm:
    return ModemFarm(
        3,
        measure_delay_s=5.0,
        seed=7,
        failures={SILENT: Failure.TIMEOUT, OTHER_COMMUNITY: Failure.WRONG_COMMUNITY},
        v2c_via_engine=via_engine,
    ).start()


@pytest.fixture(scope="module", params=[False, True], ids=["wire", "engine"])
def farm(request: pytest.FixtureRequest) -> Iterator[ModemFarm]:
    running = running_farm(via_engine=request.param)
    yield running
    running.stop()


def engine_packets(farm: ModemFarm) -> int:
    """Messages pysnmp's engine has received (SNMPv2-MIB snmpInPkts)."""
    builder = farm.engine.get_mib_builder()
    (counter,) = builder.import_symbols("__SNMPv2-MIB", "snmpInPkts")
    return int(counter.syntax)


def ask(
    farm: ModemFarm, request: snmp_wire.Request, community: str = "private", modem: int = 0
) -> snmp_wire.Response | None:
    """Send one request as raw bytes; the decoded answer, or None after 0.5 s of silence."""
    target = farm[modem]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(
            snmp_wire.encode_message(community.encode(), request, 4242),
            (target.address, target.port),
        )
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return None
    answered_community, response = snmp_wire.decode_response(data)
    assert answered_community == community.encode()
    return response


def next_request(*oids: str) -> snmp_wire.Request:
    return snmp_wire.Request(snmp_wire.GET_NEXT, snmp_wire.get_request(list(oids)).var_binds)


def bulk(non_repeaters: int, repetitions: int, *oids: str) -> snmp_wire.Request:
    var_binds = snmp_wire.get_request(list(oids)).var_binds
    return snmp_wire.Request(snmp_wire.GET_BULK, var_binds, non_repeaters, repetitions)


def if_index(farm: ModemFarm) -> int:
    return farm[0].interfaces(RXMER.scope)[0][0]


# (name, request builder): each answer is compared between the two ways of answering.
REQUESTS: list[tuple[str, Callable[[ModemFarm], snmp_wire.Request]]] = [
    ("get", lambda f: snmp_wire.get_request([pnm.SYS_DESCR, pnm.CTL_STATUS])),
    ("get unknown", lambda f: snmp_wire.get_request(["1.3.6.1.2.1.1.99.0", "1.3.9.9"])),
    ("get absent instance", lambda f: snmp_wire.get_request([RXMER.meas_status_oid(99999)])),
    ("getnext", lambda f: next_request(pnm.SYS_DESCR, pnm.OFDM_CHANNEL_ID)),
    ("getnext past the end", lambda f: next_request("1.3.6.1.9")),
    ("getbulk", lambda f: bulk(1, 12, pnm.SYS_DESCR, pnm.PNM)),
    ("getbulk capped at 64", lambda f: bulk(0, 200, pnm.SYS_DESCR)),
    ("getbulk to the end", lambda f: bulk(0, 5, "1.3.6.1.4.1.4491.2.1.28.9")),
    (
        "set file name",
        lambda f: snmp_wire.set_request([(RXMER.file_name_oid(if_index(f)), "x.bin")]),
    ),
    ("set wrong type", lambda f: snmp_wire.set_request([(pnm.BULK_DEST_IP, 5)])),
    ("set wrong value", lambda f: snmp_wire.set_request([(pnm.BULK_UPLOAD_CONTROL, 9)])),
    (
        "set refused at its second varbind",
        lambda f: snmp_wire.set_request(
            [(pnm.BULK_DEST_PATH, "up/"), (pnm.BULK_DEST_IP_TYPE, v2c.Gauge32(1))]
        ),
    ),
    ("set read-only object", lambda f: snmp_wire.set_request([(pnm.SYS_DESCR, "x")])),
    ("set no such object", lambda f: snmp_wire.set_request([("1.3.6.1.4.1.9.9.9.0", 1)])),
    (
        "trigger",
        lambda f: snmp_wire.set_request([(RXMER.enable_oid(if_index(f)), pnm.TRUE)]),
    ),
    (
        "meas status while busy",
        lambda f: snmp_wire.get_request([RXMER.meas_status_oid(if_index(f))]),
    ),
    (
        "second trigger while busy",
        lambda f: snmp_wire.set_request([(RXMER.enable_oid(if_index(f)), pnm.TRUE)]),
    ),
]


def test_every_request_gets_the_engines_answer() -> None:
    answers: dict[bool, dict[str, snmp_wire.Response | None]] = {}
    walks: dict[bool, list] = {}
    for via_engine in (True, False):
        running = running_farm(via_engine=via_engine)
        try:
            before = engine_packets(running)
            answers[via_engine] = {name: ask(running, build(running)) for name, build in REQUESTS}
            walks[via_engine] = client().walk(running[0].target(), pnm.PNM, 10_000)
            taken = engine_packets(running) - before
        finally:
            running.stop()
        assert taken > 0 if via_engine else taken == 0  # the wire's requests bypass the engine
    engine = {name: answer for name, answer in answers[True].items() if answer is not None}
    assert engine.keys() == answers[True].keys()  # the engine answered every request
    assert engine["get unknown"].var_binds[0][1] is None
    assert len(engine["getbulk capped at 64"].var_binds) == 64
    busy = engine["second trigger while busy"].error_status
    assert snmp_wire.ERROR_STATUSES[busy] == "inconsistentValue"
    assert len(walks[True]) > 50
    assert answers[False] == answers[True]
    assert walks[False] == walks[True]


def test_silent_modem_and_foreign_community_get_no_answer(farm: ModemFarm) -> None:
    request = snmp_wire.get_request([pnm.SYS_DESCR])
    assert ask(farm, request, modem=SILENT) is None
    assert ask(farm, request, community="nobody") is None
    assert ask(farm, request, modem=OTHER_COMMUNITY) is None  # its communities are others
    assert ask(farm, request, community="private-other", modem=OTHER_COMMUNITY) is not None


def test_read_only_community_reads_but_cannot_set(farm: ModemFarm) -> None:
    read = ask(farm, snmp_wire.get_request([pnm.SYS_DESCR]), community="public")
    assert read is not None
    assert read.error_status == 0
    refused = ask(farm, snmp_wire.set_request([(pnm.BULK_DEST_PATH, "x/")]), community="public")
    assert refused is not None
    assert (snmp_wire.ERROR_STATUSES[refused.error_status], refused.error_index) == (
        "noAccess",
        1,
    )


def test_v3_still_goes_through_the_engine(farm: ModemFarm) -> None:
    before = engine_packets(farm)
    (description,) = client().get(farm[0].v3_target(), pnm.SYS_DESCR)
    assert isinstance(description, bytes)
    assert b"DOCSIS 3.1" in description
    assert engine_packets(farm) > before
