"""What the end-to-end pipeline benchmarks share: process start-up, CPU and RSS readings
from /proc, a clean broker and cache, the throw-away database's URL. Needs Django set up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
BEAT = [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO"]


def run_farm(count: int, tftp_port: int, delay_s: float | tuple[float, float], conn) -> None:
    """The simulated modems, in a child process of their own: sends (address, port, MAC,
    community) of each, then serves until told to stop."""
    from simulators.modem import ModemFarm

    with ModemFarm(
        count,
        measure_delay_s=delay_s,
        seed=1,
        distinct_addresses=True,
        tftp_port=tftp_port,
        upload_workers=32,
    ) as farm:
        conn.send([(m.address, m.port, m.mac, m.community) for m in farm])
        conn.recv()  # until told to stop


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine spent busy so far (every core)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def yardstick_ms() -> float:
    """The best of five timings of a fixed pure-Python loop, in ms: how fast this machine
    runs Python at the moment (shared cloud cores vary between days by 2x and more).
    Figures of runs whose yardsticks differ much do not compare."""
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        total = 0
        for number in range(1_000_000):
            total += number
        best = min(best, time.perf_counter() - began)
    return 1000 * best


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def wait_for_children(pid: int, count: int, timeout_s: float = 120.0) -> list[int]:
    """The ``count`` children of a prefork worker, once it has forked them all (a fixed
    sleep missed them on a slow machine, and their CPU went uncounted)."""
    deadline = time.monotonic() + timeout_s
    while len(found := children(pid)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} has {len(found)} of {count} children")
        time.sleep(0.2)
    return found


def fresh_broker_and_cache() -> None:
    """Drop a previous, interrupted run's messages and cache keys: locks and poll claims
    are keyed by row ids, which restart with each throw-away database."""
    from django.core.cache import cache

    from config.celery_app import app

    with app.connection_for_write() as conn:
        for queue in ("snmp", "ingest", "maintenance", "default"):
            with conn.channel() as channel:
                try:
                    # a virtual (Redis) channel; kombu's stub knows only the base class
                    channel.queue_purge(queue)  # type: ignore[attr-defined]
                except Exception:  # noqa: S112 - a queue that never existed is empty
                    continue
    cache.clear()


def database_url() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit((parts.scheme, parts.netloc, "/" + connection.settings_dict["NAME"], "", ""))


def start(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
