"""SNMP GET/s against the modem simulator, and trigger → upload → received latency.

The simulated modems run in a child process (one pysnmp engine, one UDP transport per modem,
each on its own 127.0.x.y address), so the agents do not share the GIL with the measuring
side. The measuring process holds what production splits in two: the SNMP client (a worker's
one engine and loop) and the real TFTP receiver (its own process in production), so its
figures are pessimistic. Each round triggers one RxMER capture on every modem through the
client (CtlStatus GET + FileName SET + FileEnable SET), then waits for every file to arrive;
latency is trigger → file complete in the spool, including the simulated measurement delay.
Then the CPU of one GET, side by side over 1,000 distinct modems: this client's v2c wire
(``devices.links.snmp_wire``) against the anchor, pysnmp's engine through its hlapi
``get_cmd`` as the client used it before (one engine, one transport target per modem), on
first contact and again. No Django, no database. Bounded: < 4 min.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.ingester import Item  # noqa: E402
from devices.links import pnm  # noqa: E402
from devices.links.pnm import PnmTest  # noqa: E402
from devices.links.snmp import SnmpClient, SnmpTarget  # noqa: E402
from devices.links.tftp import Expectation, InMemoryExpectationStore, TftpReceiver  # noqa: E402

MEASURE_DELAY_S = 0.5
GETS = 2000
ROUNDS = 3
ROUND_TIMEOUT_S = 30.0
COMMUNITY = "private"


def run_farm(count: int, tftp_port: int, conn) -> None:  # child process
    from simulators.modem import ModemFarm

    with ModemFarm(
        count,
        measure_delay_s=MEASURE_DELAY_S,
        distinct_addresses=True,
        tftp_port=tftp_port,
        community=COMMUNITY,
        upload_workers=32,
    ) as farm:
        conn.send([(m.address, m.port, m.mac) for m in farm])
        conn.recv()  # until told to stop


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bench_gets(snmp: SnmpClient, targets: list[SnmpTarget]) -> None:
    latencies = []
    started = time.perf_counter()
    for i in range(GETS):
        t0 = time.perf_counter()
        snmp.get(targets[i % len(targets)], pnm.CTL_STATUS)
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    print(
        f"  SNMP GET sequential, {len(targets)} agents: {GETS / elapsed:,.0f} GET/s, "
        f"p50 {statistics.median(latencies):.2f} ms, p95 {percentile(latencies, 0.95):.2f} ms"
    )


def bench_captures(count: int) -> None:
    received: dict[str, float] = {}
    done = threading.Condition()

    def forward(item: Item) -> None:
        with done:
            received[item.meta["file_name"]] = time.time()
            done.notify_all()

    store = InMemoryExpectationStore()
    spool = tempfile.TemporaryDirectory(prefix="bench-pnm-links-")
    receiver = TftpReceiver(
        forward, store, spool.name, host="127.0.0.1", port=0, heartbeat_interval_s=60
    )
    receiver_thread = threading.Thread(target=receiver.run, name="bench-tftp")
    receiver_thread.start()

    parent, child = mp.Pipe()
    farm = mp.get_context("spawn").Process(
        target=run_farm, args=(count, receiver.bound_port, child)
    )
    farm.start()
    modems = parent.recv()
    snmp = SnmpClient()
    targets = [
        SnmpTarget(a, p, "2c", community=COMMUNITY, timeout_s=2, retries=1) for a, p, _ in modems
    ]
    try:
        print(f"{count} modems (measurement delay {MEASURE_DELAY_S} s):")
        bench_gets(snmp, targets)
        for target in targets:
            pnm.set_bulk_destination(snmp, target, "127.0.0.1")
        latencies: list[float] = []
        for round_no in range(ROUNDS):
            triggered: dict[str, float] = {}
            round_started = time.time()
            for (address, _, mac), target in zip(modems, targets, strict=True):
                name = pnm.stored_file_name(PnmTest.RXMER, mac, 193, int(round_started) + round_no)
                store.expect(
                    Expectation(name, address, mac=pnm.normalize_mac(mac), test=PnmTest.RXMER.value)
                )
                triggered[name] = time.time()
                pnm.start_capture(snmp, target, PnmTest.RXMER, 3, name)
            trigger_s = time.time() - round_started
            deadline = time.monotonic() + ROUND_TIMEOUT_S
            with done:
                while not all(name in received for name in triggered):
                    if not done.wait(max(0.0, deadline - time.monotonic())):
                        break
            arrived = [received[n] - t for n, t in triggered.items() if n in received]
            latencies.extend(arrived)
            last = max((received[n] for n in triggered if n in received), default=time.time())
            print(
                f"  round {round_no + 1}: {len(arrived)}/{count} files, triggers took "
                f"{trigger_s:.2f} s ({count / trigger_s:,.0f}/s), "
                f"{len(arrived) / (last - round_started):,.1f} files/s trigger-to-last-file"
            )
            time.sleep(MEASURE_DELAY_S)  # every modem back to ready before the next round
        if latencies:
            print(
                f"  trigger→received latency: p50 {statistics.median(latencies) * 1000:.0f} ms, "
                f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, "
                f"max {max(latencies) * 1000:.0f} ms over {len(latencies)} files"
            )
        print(
            f"  receiver: {receiver.snapshot()['items']} items, refusals {dict(receiver.refusals)}"
        )
    finally:
        snmp.close()
        parent.send("stop")
        farm.join(30)
        receiver.stop()
        receiver_thread.join(30)
        spool.cleanup()


def engine_gets(targets: list[SnmpTarget]) -> list[float]:
    """The anchor: CPU seconds per GET through pysnmp's engine, first contact then again."""
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        get_cmd,
    )

    async def run() -> list[float]:
        engine = SnmpEngine()
        identity = ObjectIdentity(pnm.CTL_STATUS)
        transports: dict[str, UdpTransportTarget] = {}
        figures: list[float] = []
        for _ in range(2):
            started = time.process_time()
            for target in targets:
                transport = transports.get(target.host)
                if transport is None:
                    transport = transports[target.host] = await UdpTransportTarget.create(
                        (target.host, target.port), timeout=target.timeout_s, retries=1
                    )
                error, status, _, _ = await get_cmd(
                    engine,
                    CommunityData(target.community, mpModel=1),  # noqa: S508 - modems speak v2c
                    transport,
                    ContextData(),
                    ObjectType(identity),
                    lookupMib=False,
                )
                assert not error, error
                assert not int(status), status
            figures.append((time.process_time() - started) / len(targets))
        engine.close_dispatcher()
        return figures

    return asyncio.run(run())


def client_gets(targets: list[SnmpTarget]) -> list[float]:
    """CPU seconds per GET through ``SnmpClient`` (its loop thread counts: process time)."""
    snmp = SnmpClient()
    figures: list[float] = []
    try:
        for _ in range(2):
            started = time.process_time()
            for target in targets:
                assert snmp.get(target, pnm.CTL_STATUS) == [pnm.CtlStatus.READY]
            figures.append((time.process_time() - started) / len(targets))
    finally:
        snmp.close()
    return figures


def bench_client_cpu(count: int) -> None:
    parent, child = mp.Pipe()
    farm = mp.get_context("spawn").Process(
        target=run_farm, args=(count, 9, child)
    )  # GETs only: no upload, any TFTP port
    farm.start()
    targets = [
        SnmpTarget(a, p, "2c", community=COMMUNITY, timeout_s=2, retries=1)
        for a, p, _ in parent.recv()
    ]
    try:
        print(f"CPU per GET over {count} distinct modems, first contact / again:")
        for label, measure in (("pysnmp engine (anchor)", engine_gets), ("v2c wire", client_gets)):
            first, again = measure(targets)
            print(f"  {label}: {first * 1000:.2f} ms / {again * 1000:.2f} ms")
    finally:
        parent.send("stop")
        farm.join(30)


def main() -> None:
    for count in (50, 200):
        bench_captures(count)
    bench_client_cpu(1000)


if __name__ == "__main__":
    main()
