"""PostgreSQL connections of a whole deployment under load: 10 snmp worker replicas (threads,
16 each), the serial and ingest workers (prefork, 4 each), beat, web (gunicorn, 3 workers),
the TFTP receiver and the stream listener, each process with its pool (DB_POOL_MAX_SIZE=4)
and its role in application_name. Every worker gets connection-holding tasks (0.5 s of
pg_sleep each) at twice what its threads can run at once, then at three times that; web
gets 8 clients asking /health/ (one query each) all along. pg_stat_activity is sampled every
50 ms: the table gives each role's peak and the peak of the sum (goal: under 60). The same
load on one snmp replica without the pool is the anchor. Throw-away database, Redis
databases 13/14; aborts when the server has no room for it. Bounded: about 2 min.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
# This run's own Redis databases, for this process (it queues the tasks) and those it starts.
REDIS = "redis://127.0.0.1:6379/{}"
os.environ.update(REDIS_URL=REDIS.format(13), CELERY_BROKER_URL=REDIS.format(14))

import django  # noqa: E402

django.setup()

from bench_monitoring_ingest import throwaway_database  # noqa: E402  (beside this file)
from django.db import connection  # noqa: E402

SNMP_REPLICAS, SNMP_THREADS, PREFORK = 10, 16, 4
HOLD_S = 0.5
GOAL = 60
NEEDED = 75  # connections the run may take, with room for the anchor and the sampler
PHASE_TIMEOUT_S = 60
SCHEDULE = ROOT / "var" / f"bench-beat-{os.getpid()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "config", *args, "-l", "WARNING"]


def worker(name: str, queues: str, pool: str, concurrency: int) -> list[str]:
    return celery("worker", "-P", pool, "-c", str(concurrency), "-Q", queues, "-n",
                  f"{name}@%h", "-I", "config.tests.budget_tasks", "--without-gossip",
                  "--without-mingle")  # fmt: skip


def processes(web_port: int) -> dict[str, list[str]]:
    roles = {
        f"worker-snmp-{i}": worker(f"snmp{i}", "snmp", "threads", SNMP_THREADS)
        for i in range(SNMP_REPLICAS)
    }
    roles |= {
        "worker-serial": worker("serial", "serial", "prefork", PREFORK),
        "worker-ingest": worker("ingest", "ingest,maintenance,default", "prefork", PREFORK),
        "beat": celery("beat", "--pidfile=", "-s", str(SCHEDULE)),
        "web": [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--workers", "3",
                "--bind", f"127.0.0.1:{web_port}", "--log-level", "warning"],
        "tftp": [sys.executable, "manage.py", "tftp_receiver", "--host", "127.0.0.1",
                 "--port", "0"],
        "listener": [sys.executable, "manage.py", "ingest_listener", "--port", "0"],
    }  # fmt: skip
    return roles


def sample(tag: str, peaks: dict[str, int], totals: list[int], stop: threading.Event) -> None:
    """Every 50 ms: connections per role of this run, and their sum."""
    query = (
        "SELECT application_name, count(*) FROM pg_stat_activity "
        "WHERE application_name LIKE %s GROUP BY 1"
    )
    while not stop.is_set():
        with connection.cursor() as cursor:
            cursor.execute(query, [f"fieldrelay-{tag}-%"])
            rows = cursor.fetchall()
        for name, count in rows:
            role = name.removeprefix(f"fieldrelay-{tag}-")
            peaks[role] = max(peaks[role], count)
        totals.append(sum(count for _, count in rows))
        time.sleep(0.05)
    connection.close()


def web_clients(port: int, stop: threading.Event, answered: list[int]) -> None:
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/health/")
            answered.append(conn.getresponse().status)
        except OSError:
            time.sleep(0.2)
        finally:
            conn.close()


def offer(factor: int) -> tuple[int, float]:
    """``factor`` x what the workers' threads can hold at once, queued in one go; the tasks
    done and the seconds it took."""
    from config.tests.budget_tasks import hold_connection

    plan = {"snmp": SNMP_REPLICAS * SNMP_THREADS, "serial": PREFORK, "ingest": PREFORK}
    started = time.monotonic()
    results = [
        hold_connection.apply_async((HOLD_S,), queue=queue)
        for queue, slots in plan.items()
        for _ in range(slots * factor)
    ]
    deadline = started + PHASE_TIMEOUT_S
    while time.monotonic() < deadline and not all(result.ready() for result in results):
        time.sleep(0.2)
    done = sum(result.successful() for result in results)
    return done, time.monotonic() - started


def run(
    url: str, tag: str, pool: str, roles: dict[str, list[str]], web_port: int | None = None
) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS.format(13),
        "CELERY_BROKER_URL": REDIS.format(14),
        "DB_POOL_MAX_SIZE": pool,
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    started = []
    peaks: dict[str, int] = defaultdict(int)
    totals: list[int] = []
    stop = threading.Event()
    try:
        for role, command in roles.items():
            started.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env={**env, "FIELDRELAY_ROLE": f"{tag}-{role}"},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(20)  # start-up of every process on 2 cores
        sampler = threading.Thread(target=sample, args=(tag, peaks, totals, stop))
        sampler.start()
        answered: list[int] = []
        clients = [
            threading.Thread(target=web_clients, args=(web_port, stop, answered))
            for _ in range(8 if web_port else 0)
        ]
        for client in clients:
            client.start()
        phases = {factor: offer(factor) for factor in (2, 6)}
        stop.set()
        sampler.join(10)
        for client in clients:
            client.join(15)
        return {"peaks": dict(peaks), "total": max(totals, default=0), "phases": phases,
                "web": (len(answered), answered.count(200))}  # fmt: skip
    finally:
        stop.set()
        for proc in started:
            proc.terminate()
        for proc in started:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    for db in (13, 14):
        subprocess.run(["redis-cli", "-n", str(db), "FLUSHDB"], check=True, capture_output=True)
    with throwaway_database("bench_connection_budget") as url:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity"
            )
            room = cursor.fetchone()[0]
        if room < NEEDED:
            sys.exit(f"PostgreSQL has room for {room} more connections; the bench needs {NEEDED}")
        tag = f"b{os.getpid()}"
        web_port = free_port()
        budget = run(url, tag, "4", processes(web_port), web_port)
        anchor = run(url, f"{tag}a", "0", {"worker-snmp-0": worker("anchor", "snmp", "threads",
                                                                    SNMP_THREADS)})  # fmt: skip
    print(f"{'role':<16} {'processes':>9} {'peak connections':>17}")
    groups: dict[str, list[int]] = defaultdict(list)
    for role, peak in budget["peaks"].items():
        groups["worker-snmp (each)" if role.startswith("worker-snmp") else role].append(peak)
    for role, peaks in sorted(groups.items()):
        print(f"{role:<16} {len(peaks):>9} {max(peaks):>17}")
    print(f"peak of the sum, whole deployment: {budget['total']} (goal < {GOAL})")
    for factor, (done, seconds) in budget["phases"].items():
        print(f"offered {factor}x the threads: {done} tasks done in {seconds:.1f} s "
              f"({done / seconds:.0f}/s)")  # fmt: skip
    print(f"web: {budget['web'][1]} of {budget['web'][0]} /health/ requests answered 200")
    print(f"anchor, one snmp replica without the pool: peak {anchor['total']} connections")
    if budget["total"] >= GOAL:
        sys.exit(f"over budget: {budget['total']} >= {GOAL}")


if __name__ == "__main__":
    main()
