"""End-to-end PNM captures/s with N simulated modems, trigger-to-transaction latency, and
the RSS of the snmp/ingest worker processes across the run.

Everything is real and separate, as deployed (docker/compose.yml's shape): the simulated
modems (one child process, each modem on its own 127.0.x.y address), the TFTP receiver
(``manage.py tftp_receiver``), celery beat with our database scheduler (it runs the tick
dispatcher every second, on the ingest worker), two ``snmp`` workers on the threads pool
waiting for uploads (PNM_ARRIVAL_WAIT_S), an ``ingest`` worker, PostgreSQL (a throw-away
database) and Redis. Every modem runs one multi-RxMER operation on one channel, ticked at
a fixed rate. Throughput is counted over
the steady middle of the run; latency is Capture.triggered_at -> Transaction.timestamp.

The load's phase (``--phase``): ``spread`` (the default) starts the operations in small
batches across the first interval, as a fleet's operations started at different moments
are, so the offered rate is even; ``together`` starts them all in one transaction, so every
tick of every operation falls due in the same instant (a campaign started at once: a burst
of all of them once per interval, each to start within its grace).

    python bench/bench_pnm_pipeline.py [--modems 200] [--duration 60] [--interval 4]
    python bench/bench_pnm_pipeline.py --duration 260 --captures 10000  # RSS over 10,000
    python bench/bench_pnm_pipeline.py --snmp-pool prefork --snmp-procs 1 --snmp-workers 4 \
        --ingest-pool prefork --ingest-workers 2 --arrival-wait 0  # the prefork shape
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from pipeline_harness import (  # noqa: E402  (beside this file)
    BEAT,
    cpu_s,
    database_url,
    free_udp_port,
    fresh_broker_and_cache,
    machine_busy_s,
    percentile,
    rss_mb,
    run_farm,
    start,
    wait_for_children,
    yardstick_ms,
)

WORKER_ENV = {
    "PNM_SNMP_TIMEOUT_S": "2",
    "PNM_SNMP_RETRIES": "1",
    "PNM_MEASURE_DEADLINE_S": "20",
    "PNM_UPLOAD_DEADLINE_S": "20",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modems", type=int, default=200)
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--interval", type=int, default=4)
    parser.add_argument("--snmp-workers", type=int, default=4, help="Celery -c of each snmp")
    parser.add_argument(
        "--tick-threads", type=int, default=32, help="PNM_TICK_THREADS: ticks at once per process"
    )
    parser.add_argument("--ticks-per-message", type=int, default=8, help="PNM_TICKS_PER_MESSAGE")
    parser.add_argument(
        "--phase",
        choices=("spread", "together"),
        default="spread",
        help="operations started across the first interval, or all at once (a burst per tick)",
    )
    parser.add_argument("--delay", type=float, default=0.2, help="simulated measurement, s")
    parser.add_argument("--poll", type=float, default=1.0, help="PNM_POLL_INTERVAL_S, s")
    parser.add_argument("--snmp-pool", default="threads", help="threads, or prefork")
    parser.add_argument(
        "--arrival-wait", type=float, default=1.0, help="PNM_ARRIVAL_WAIT_S (0 with prefork)"
    )
    parser.add_argument("--snmp-procs", type=int, default=2, help="snmp worker processes")
    parser.add_argument("--ingest-pool", default="prefork", help="prefork (compose), or threads")
    parser.add_argument("--ingest-workers", type=int, default=4)
    parser.add_argument(
        "--profile-snmp", metavar="FILE", help="run the snmp worker under cProfile (use -P solo)"
    )
    parser.add_argument(
        "--captures", type=int, default=0, help="stop once this many are recorded (RSS runs)"
    )
    parser.add_argument(
        "--db-pool", type=int, default=4, help="DB_POOL_MAX_SIZE per process (0: none, as tests)"
    )
    parser.add_argument("--worker-log", default="WARNING", help="INFO logs every task")
    parser.add_argument("--solo", action="store_true", help="one solo worker for all queues")
    args = parser.parse_args()

    yardstick_before = yardstick_ms()  # idle machine, before any process starts
    fresh_broker_and_cache()
    # Our own throw-away database, never the test suite's test_<name>.
    connection.settings_dict["TEST"]["NAME"] = f"bench_pnm_pipeline_{os.getpid()}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    files = Path(tempfile.mkdtemp(prefix="bench-pnm-"))
    settings.FIELDRELAY_STORAGE_ROOT = files / "storage"
    tftp_port = free_udp_port()
    env = {
        **os.environ,
        **WORKER_ENV,
        "PNM_POLL_INTERVAL_S": str(args.poll),
        "PNM_ARRIVAL_WAIT_S": str(args.arrival_wait),
        "DB_POOL_MAX_SIZE": str(args.db_pool),
        "PNM_TICK_THREADS": str(args.tick_threads),
        "PNM_TICKS_PER_MESSAGE": str(args.ticks_per_message),
        "DATABASE_URL": database_url(),
        "FIELDRELAY_STORAGE_ROOT": str(files / "storage"),
        "FIELDRELAY_SPOOL_DIR": str(files / "spool"),
        "PNM_TFTP_LISTEN_PORT": str(tftp_port),
    }
    python = sys.executable
    parent, child = mp.Pipe()
    farm = mp.Process(
        target=run_farm, args=(args.modems, tftp_port, args.delay, child), daemon=True
    )
    farm.start()
    assert farm.pid is not None  # set by start()
    procs: list[subprocess.Popen] = []
    try:
        from captures.models import TERMINAL_STATES, Operation, OutcomeReason, Transaction
        from devices.models import CableModem

        modems = [
            CableModem.objects.create(
                mac_address=mac, ip_address=address, snmp_port=port, community=community
            )
            for address, port, mac, community in parent.recv()
        ]
        worker = [python, "-m", "celery", "-A", "config", "worker", "-l", args.worker_log]
        n_snmp = str(args.snmp_workers)
        if args.solo:  # one process does everything: its RSS is the memory figure
            solo = start(
                [*worker, "-P", "solo", "-Q", "snmp,ingest,maintenance,default", "-n", "solo@%h"],
                env,
                files / "solo.log",
            )
            procs.append(solo)
            pids = {"solo": [solo.pid]}
        else:
            profiled = ["-m", "cProfile", "-o", args.profile_snmp] if args.profile_snmp else []
            snmps = [
                start(
                    [
                        python,
                        *profiled,
                        *worker[1:],
                        "-Q",
                        "snmp",
                        "-n",
                        f"bench-snmp{number}@%h",
                        "-P",
                        args.snmp_pool,
                        "-c",
                        n_snmp,
                        "--prefetch-multiplier",
                        "1",
                    ],
                    env,
                    files / f"snmp{number}.log",
                )
                for number in range(args.snmp_procs)
            ]
            ingest = start(
                [
                    *worker,
                    "-Q",
                    "ingest,maintenance,default",
                    "-n",
                    "bench-ingest@%h",
                    "-P",
                    args.ingest_pool,
                    "-c",
                    str(args.ingest_workers),
                ],
                env,
                files / "ingest.log",
            )
            procs += [*snmps, ingest]
        receiver = start([python, "manage.py", "tftp_receiver"], env, files / "tftp.log")
        procs.append(receiver)
        time.sleep(8)  # workers up
        if not args.solo:
            snmp_pids = [
                pid
                for snmp in snmps
                for pid in (
                    wait_for_children(snmp.pid, args.snmp_workers)
                    if args.snmp_pool == "prefork"
                    else [snmp.pid]
                )
            ]
            ingest_pids = (
                wait_for_children(ingest.pid, args.ingest_workers)
                if args.ingest_pool == "prefork"
                else [ingest.pid]
            )
            pids = {"snmp": snmp_pids, "ingest": ingest_pids}
        began = time.time()
        beat = start(
            [*BEAT, "--max-interval", "1", "--pidfile=", "-s", str(files / "beat-schedule")],
            env,
            files / "beat.log",
        )
        procs.append(beat)
        operations = start_fleet(modems, args.duration, args.interval, args.phase)
        # Where the CPU goes: every process of the pipeline, and the whole machine.
        cpu_pids: dict[str, list[int]] = {
            **{f"{n} worker": ps for n, ps in pids.items()},
            "simulated modems": [farm.pid],
            "tftp receiver": [receiver.pid],
            "beat": [beat.pid],
            "this script": [os.getpid()],
        }
        if not args.solo:  # the main process too, once (a threads pool has only that one)
            mains = {"snmp worker": [snmp.pid for snmp in snmps], "ingest worker": [ingest.pid]}
            for name, main_pids in mains.items():
                cpu_pids[name] = [*main_pids, *(p for p in cpu_pids[name] if p not in main_pids)]
        cpu_before = {n: sum(map(cpu_s, ps)) for n, ps in cpu_pids.items()}
        busy_before = machine_busy_s()
        rss_before = None
        rss_at = 0  # transactions recorded when the "after warm-up" RSS was taken
        warm_up = max(100, args.captures // 20)
        deadline = began + args.duration + 90
        while time.time() < deadline:
            recorded = Transaction.objects.filter(capture__operation__in=operations).count()
            warm = recorded >= warm_up if args.captures else time.time() > began + 15
            if rss_before is None and warm:
                rss_before = {n: [rss_mb(p) for p in ps] for n, ps in pids.items()}
                rss_at = recorded
            if args.captures and recorded >= args.captures:
                break
            done = Operation.objects.filter(pk__in=operations, state__in=TERMINAL_STATES)
            if done.count() == len(operations):
                break
            time.sleep(2)
        recorded = Transaction.objects.filter(capture__operation__in=operations).count()
        rss_after = {n: [rss_mb(p) for p in ps] for n, ps in pids.items()}
        elapsed = time.time() - began
        cpu = {n: sum(map(cpu_s, ps)) - cpu_before[n] for n, ps in cpu_pids.items()}
        busy = machine_busy_s() - busy_before

        rows = list(
            Transaction.objects.filter(capture__operation__in=operations).values_list(
                "timestamp", "capture__triggered_at"
            )
        )
        stamps = sorted(ts.timestamp() for ts, _ in rows)
        latencies = [(ts - trig).total_seconds() * 1000 for ts, trig in rows]
        window = (stamps[0] + 10, stamps[-1] - 5) if stamps else (0, 0)
        steady = sum(window[0] <= t <= window[1] for t in stamps)
        states = dict(
            Operation.objects.filter(pk__in=operations)
            .values_list("state")
            .annotate(n=django.db.models.Count("id"))
        )
        offered = args.modems / args.interval
        print(
            f"{args.modems} modems, 1 channel, every {args.interval} s for {args.duration} s "
            f"(offered {offered:.0f} captures/s, operations started {args.phase}); "
            + (
                "one solo worker"
                if args.solo
                else f"{args.snmp_procs} x snmp -P {args.snmp_pool} -c {args.snmp_workers} "
                f"({args.tick_threads} tick threads, {args.ticks_per_message} ticks a message), "
                f"ingest -P {args.ingest_pool} -c {args.ingest_workers}, "
                f"database pool {args.db_pool or 'off'}"
            )
            + f", measurement {args.delay} s, polls every {args.poll} s"
        )
        print(
            f"  machine yardstick (fixed Python loop, best of 5): {yardstick_before:.0f} ms "
            f"before the run, {yardstick_ms():.0f} ms after"
        )
        print(f"  transactions: {len(rows)}; operations: {states}")
        totals = Operation.objects.filter(pk__in=operations).aggregate(
            **{
                outcome: django.db.models.Sum(outcome)
                for outcome in ("expected", "collected", "skipped", "missed", "failed")
            }
        )
        print(
            "  planned captures and their outcomes: "
            + ", ".join(f"{outcome} {count}" for outcome, count in totals.items())
        )
        if stamps and window[1] > window[0]:
            print(f"  steady captures/s: {steady / (window[1] - window[0]):.1f}")
            print(
                f"  trigger->transaction: p50 {statistics.median(latencies):.0f} ms, "
                f"p95 {percentile(latencies, 0.95):.0f} ms, max {max(latencies):.0f} ms"
            )
        reasons = (
            OutcomeReason.objects.filter(operation__in=operations)
            .values_list("outcome", "reason")
            .annotate(n=django.db.models.Sum("count"))
            .order_by("outcome", "reason")
        )
        print(
            "  not collected, by reason: "
            + (", ".join(f"{o} ({r}) {n}" for o, r, n in reasons) or "none")
        )
        print(
            f"  CPU over {elapsed:.0f} s (cores busy on average; {os.cpu_count()} cores): "
            + ", ".join(f"{n} {c / elapsed:.2f}" for n, c in cpu.items())
            + f"; everything on the machine (PostgreSQL, Redis, others) {busy / elapsed:.2f}"
        )
        for name in pids:
            before = rss_before.get(name, []) if rss_before else []
            print(
                f"  {name} worker RSS MB per process, after {rss_at} -> after {recorded} "
                "transactions: "
                + ", ".join(
                    f"{b:.1f}->{a:.1f}" for b, a in zip(before, rss_after[name], strict=False)
                )
            )
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        parent.send("stop")
        farm.join(15)
        connection.creation.destroy_test_db(old_name, verbosity=0)


START_BATCH_S = 0.1  # a spread fleet's operations start in a batch every 0.1 s


def start_fleet(modems: list, duration_s: int, interval_s: int, phase: str) -> list[int]:
    """One multi-RxMER operation on channel 193 of each modem: all in one transaction
    (``together``), or batch after batch across one interval (``spread``). Returns their
    primary keys."""
    from captures.demo import start_rxmer

    def start_batch(batch: list) -> list[int]:
        started = start_rxmer(batch, duration_s, interval_s, channel_ids=[193])
        return [operation.pk for operation in started]

    if phase == "together":
        return start_batch(modems)
    batches = max(1, round(interval_s / START_BATCH_S))
    size = -(-len(modems) // batches)
    first = time.monotonic()
    operations: list[int] = []
    for number, start_at in enumerate(range(0, len(modems), size)):
        time.sleep(max(0.0, first + number * START_BATCH_S - time.monotonic()))
        operations += start_batch(modems[start_at : start_at + size])
    return operations


if __name__ == "__main__":
    main()
