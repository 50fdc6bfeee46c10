"""How the simulated modem farm scales: start-up, memory and SNMP cost per request.

The campaign benchmark runs 10,000 simulated modems, so the farm itself must start in
seconds, fit in memory and answer cheaply. Each farm size runs in a fresh child process
(RSS and fds are the farm's alone), modems on distinct 127.0.x.y addresses. In-process
costs call the last modem's ``get``/``get_next`` directly; the round trip is the platform's
SNMP client against the same process's farm (they share the GIL: pessimistic).
No Django, no database. Bounded: < 2 min on 2 cores.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = (1000, 10000)
CALLS = 5000  # in-process calls per figure
ROUND_TRIPS = 500
WALKS = 50
BUDGET_S = 5.0  # per in-process figure


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def per_call_us(fn: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    calls = 0
    while calls < CALLS and time.perf_counter() - started < BUDGET_S:
        fn(*args)
        calls += 1
    return (time.perf_counter() - started) / calls * 1e6


def walk_step_us(modem: Any) -> tuple[float, int]:
    """Mean cost of one get_next over whole walks of the modem's MIB, and the MIB's size."""
    started = time.perf_counter()
    steps = size = 0
    while steps < CALLS and time.perf_counter() - started < BUDGET_S:
        oid: tuple[int, ...] = (1, 3, 6)
        size = 0
        while (found := modem.get_next(oid)) is not None and size < 10_000:
            oid = found[0]
            size += 1
        steps += size + 1
    return (time.perf_counter() - started) / steps * 1e6, size


def child(count: int, conn: Any) -> None:
    from devices.links import pnm
    from devices.links.snmp import SnmpClient
    from simulators.modem import ModemFarm, _oid

    base_rss, base_fds = rss_mib(), open_fds()
    t0 = time.perf_counter()
    farm = ModemFarm(count, distinct_addresses=True, measure_delay_s=0.5)
    t1 = time.perf_counter()
    farm.start(timeout_s=300)
    t2 = time.perf_counter()
    figures = {
        "construct_s": t1 - t0,
        "start_s": t2 - t1,
        "rss_mib": rss_mib() - base_rss,
        "fds": open_fds() - base_fds,
    }
    try:
        last = farm[-1]
        figures["get_scalar_us"] = per_call_us(last.get, _oid(pnm.CTL_STATUS))
        figures["get_table_us"] = per_call_us(last.get, _oid(f"{pnm.OFDM_CHANNEL_ID}.3"))
        figures["get_next_us"], figures["mib_objects"] = walk_step_us(last)
        snmp = SnmpClient()
        target = last.target(timeout_s=2, retries=1)
        snmp.get(target, pnm.CTL_STATUS)  # the client's engine and loop start once
        latencies = []
        for _ in range(ROUND_TRIPS):
            t = time.perf_counter()
            snmp.get(target, pnm.CTL_STATUS)
            latencies.append((time.perf_counter() - t) * 1e3)
        figures["snmp_get_p50_ms"] = statistics.median(latencies)
        walks = []
        for _ in range(WALKS):
            t = time.perf_counter()
            rows = snmp.walk(target, pnm.OFDM_CHANNEL_ID)
            walks.append((time.perf_counter() - t) * 1e3)
            assert len(rows) == 2
        figures["snmp_walk_2_rows_ms"] = statistics.median(walks)
        snmp.close()
    finally:
        farm.stop()
    conn.send(figures)


def main() -> None:
    spawn = mp.get_context("spawn")
    for count in SIZES:
        parent, end = spawn.Pipe()
        process = spawn.Process(target=child, args=(count, end))
        process.start()
        if not parent.poll(600):
            process.kill()
            raise SystemExit(f"{count} modems: no figures in 10 min")
        f = parent.recv()
        process.join(30)
        print(
            f"{count} modems: construct {f['construct_s']:.2f} s, start {f['start_s']:.2f} s, "
            f"RSS +{f['rss_mib']:.0f} MiB, fds +{f['fds']}; in-process GET scalar "
            f"{f['get_scalar_us']:.1f} us, GET table {f['get_table_us']:.1f} us, "
            f"GETNEXT {f['get_next_us']:.1f} us ({f['mib_objects']} objects); "
            f"SNMP GET p50 {f['snmp_get_p50_ms']:.2f} ms, walk of 2 rows p50 "
            f"{f['snmp_walk_2_rows_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
