"""Seismograph link: the count probe and a full event download, client against the
simulator (no Django, no services).

At ``time_scale=1`` the simulator keeps real link timing (1.5 s modem connect, 0.1 s per
command, 38400 baud, 1.5 s end-of-stream idle gap on the client), so these are the times
an API request would block for if it dialled the unit itself: the figures the cache must
beat. At ``time_scale=0`` only framing, parsing and the local link remain: what the test
suite pays per operation. Bounded: the realistic part runs a few calls (~1 min).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seismographs.protocol import DeviceConfig, MiniMateClient  # noqa: E402
from simulators.seismograph import SeismographSimulator  # noqa: E402

# 9,306 sample-sets at 1024 sps: the event the public notes saw take 35 chunks.
REAL_EVENT = DeviceConfig(sample_rate=1024, record_time_s=9.088, pre_trigger_s=0.25)
EVENTS = 5


def probe(sim: SeismographSimulator, idle_gap_s: float) -> float:
    """A fresh session (connect + POLL) and a 1E/1F count walk."""
    started = time.perf_counter()
    with MiniMateClient(sim.url, timeout_s=15, idle_gap_s=idle_gap_s) as unit:
        if unit.count_events() != EVENTS:
            raise SystemExit("probe counted the wrong number of events")
    return time.perf_counter() - started


def download(sim: SeismographSimulator, idle_gap_s: float) -> tuple[float, int, int]:
    """A fresh session and the whole last event: walk, 0A, 0C, 5A chunks, end of stream."""
    started = time.perf_counter()
    with MiniMateClient(sim.url, timeout_s=15, idle_gap_s=idle_gap_s) as unit:
        waveform = unit.read_waveform(EVENTS - 1)
    if waveform.raw != sim.unit.waveform_body(EVENTS - 1):
        raise SystemExit("downloaded waveform differs from the unit's")
    return time.perf_counter() - started, waveform.chunks, len(waveform.raw)


def run(transport: str, time_scale: float, rounds: int, idle_gap_s: float) -> None:
    sim = SeismographSimulator(
        transport=transport, time_scale=time_scale, events=EVENTS, config=REAL_EVENT
    ).start()
    try:
        probes = [probe(sim, idle_gap_s) for _ in range(rounds)]
        downloads = [download(sim, idle_gap_s) for _ in range(rounds)]
    finally:
        sim.stop()
    times = [d[0] for d in downloads]
    _, chunks, size = downloads[0]
    print(
        f"{transport:3} time_scale={time_scale:<4g} rounds={rounds:<2d} "
        f"probe median {statistics.median(probes):8.3f} s  "
        f"download median {statistics.median(times):8.3f} s "
        f"({size} B in {chunks} chunks, {size / statistics.median(times) / 1024:8.1f} KiB/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--real-rounds", type=int, default=1, help="rounds at time_scale=1")
    parser.add_argument("--fast-rounds", type=int, default=20, help="rounds at time_scale=0")
    args = parser.parse_args()
    for transport in ("tcp", "pty"):
        run(transport, 0.0, args.fast_rounds, idle_gap_s=0.05)
    run("tcp", 0.01, 5, idle_gap_s=0.05)
    if args.real_rounds:
        run("tcp", 1.0, args.real_rounds, idle_gap_s=1.5)


if __name__ == "__main__":
    main()
