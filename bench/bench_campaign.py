"""A fleet campaign end to end: one RxMER capture on each of N simulated modems spread over
C CMTS groups, with the campaign's caps, through the whole deployed shape.

Everything is real and separate (docker/compose.yml's shape): the simulated modems (one
child process, each modem on its own 127.0.x.y address, measurement delays drawn from a
range), the TFTP receiver, beat (the campaign dispatcher, every second), two ``snmp``
workers on the threads pool, an ``ingest`` worker that also runs the dispatcher and the
summaries, PostgreSQL (a throw-away database) and Redis. Reports completion time, goodput,
CPU per capture by process, peak PostgreSQL connections, worker RSS, and whether any
capture was lost (a settled modem without its file, an upload never recorded).

    python bench/bench_campaign.py                      # 10,000 modems, 20 CMTS groups
    python bench/bench_campaign.py --modems 2000 --max-in-flight 200
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
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
    children,
    cpu_s,
    database_url,
    free_udp_port,
    fresh_broker_and_cache,
    machine_busy_s,
    rss_mb,
    run_farm,
    start,
    yardstick_ms,
)

WORKER_ENV = {
    "PNM_SNMP_TIMEOUT_S": "2",
    "PNM_SNMP_RETRIES": "1",
    "PNM_MEASURE_DEADLINE_S": "20",
    "PNM_UPLOAD_DEADLINE_S": "20",
}
RXMER = "DS_OFDM_RXMER_PER_SUBCAR"
# A celery worker under cProfile timed by process CPU time, written out when it exits.
PROFILED = """
import atexit, cProfile, sys, time
from celery.__main__ import main
profile = cProfile.Profile(time.process_time)
atexit.register(lambda: (profile.disable(), profile.dump_stats({out!r})))
sys.argv = ["celery", *sys.argv[1:]]
profile.enable()
main()
"""


def register(modems: list[tuple[str, int, str, str]], groups: int) -> None:
    from devices.models import CableModem

    CableModem.objects.bulk_create(
        CableModem(
            mac_address=mac,
            ip_address=address,
            snmp_port=port,
            community=community,
            cmts=f"cmts-{index % groups:02d}",
        )
        for index, (address, port, mac, community) in enumerate(modems)
    )


def database_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modems", type=int, default=10_000)
    parser.add_argument("--cmts", type=int, default=20, help="CMTS groups")
    parser.add_argument("--max-in-flight", type=int, default=300)
    parser.add_argument("--max-per-cmts", type=int, default=16)
    parser.add_argument("--delay", default="0.5-2.0", help="measurement delay range, s")
    parser.add_argument("--snmp-procs", type=int, default=2)
    parser.add_argument("--snmp-workers", type=int, default=8, help="Celery -c of each snmp")
    parser.add_argument(
        "--tick-threads", type=int, default=64, help="PNM_TICK_THREADS: ticks at once per process"
    )
    parser.add_argument("--ingest-workers", type=int, default=4)
    parser.add_argument(
        "--db-pool", type=int, default=4, help="DB_POOL_MAX_SIZE per process (0: none, as tests)"
    )
    parser.add_argument(
        "--arrival-wait", type=float, default=3.0, help="PNM_ARRIVAL_WAIT_S (threads), s"
    )
    parser.add_argument("--timeout", type=float, default=900, help="give up after, s")
    parser.add_argument(
        "--profile-snmp",
        metavar="FILE",
        help="one solo snmp worker under cProfile, timed by CPU (process) time",
    )
    args = parser.parse_args()
    low, _, high = args.delay.partition("-")
    delay = (float(low), float(high or low))
    yardstick_before = yardstick_ms()  # idle machine, before any process starts

    fresh_broker_and_cache()
    connection.settings_dict["TEST"]["NAME"] = f"bench_campaign_{os.getpid()}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    files = Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    settings.FIELDRELAY_STORAGE_ROOT = files / "storage"
    tftp_port = free_udp_port()
    env = {
        **os.environ,
        **WORKER_ENV,
        "DATABASE_URL": database_url(),
        "FIELDRELAY_STORAGE_ROOT": str(files / "storage"),
        "FIELDRELAY_SPOOL_DIR": str(files / "spool"),
        "PNM_TFTP_LISTEN_PORT": str(tftp_port),
        "PNM_MAX_IN_FLIGHT_PER_CMTS": str(args.max_per_cmts),
        "DB_POOL_MAX_SIZE": str(args.db_pool),
        "PNM_ARRIVAL_WAIT_S": str(args.arrival_wait),
        "PNM_TICK_THREADS": str(args.tick_threads),
    }
    parent, child = mp.Pipe()
    farm = mp.Process(target=run_farm, args=(args.modems, tftp_port, delay, child), daemon=True)
    began_farm = time.time()
    farm.start()
    assert farm.pid is not None
    procs = []
    try:
        listed = parent.recv()
        farm_ready_s = time.time() - began_farm
        register(listed, args.cmts)
        worker = [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "WARNING"]
        if args.profile_snmp:
            env["PNM_ARRIVAL_WAIT_S"] = "0"  # a solo worker must not sit waiting for uploads
            profiled = PROFILED.format(out=args.profile_snmp)
            snmps = [
                start(
                    [sys.executable, "-c", profiled, "-A", "config", "worker", "-l", "WARNING",
                     "-Q", "snmp", "-n", "bench-snmp0@%h", "-P", "solo"],
                    env,
                    files / "snmp0.log",
                )
            ]  # fmt: skip
        else:
            snmps = [
                start(
                    [*worker, "-Q", "snmp", "-n", f"bench-snmp{n}@%h", "-P", "threads", "-c",
                     str(args.snmp_workers), "--prefetch-multiplier", "1"],
                    env,
                    files / f"snmp{n}.log",
                )
                for n in range(args.snmp_procs)
            ]  # fmt: skip
        ingest = start(
            [*worker, "-Q", "ingest,maintenance,default", "-n", "bench-ingest@%h", "-P",
             "threads", "-c", str(args.ingest_workers)],
            env,
            files / "ingest.log",
        )  # fmt: skip
        receiver = start([sys.executable, "manage.py", "tftp_receiver"], env, files / "tftp.log")
        beat = start(
            [*BEAT, "--max-interval", "1", "--pidfile=", "-s", str(files / "beat-schedule")],
            env,
            files / "beat.log",
        )
        procs = [*snmps, ingest, receiver, beat]
        time.sleep(8)  # workers up
        cpu_pids = {
            "snmp workers": [p.pid for p in snmps],
            "ingest worker (+dispatcher, summaries)": [ingest.pid],
            "tftp receiver": [receiver.pid],
            "beat": [beat.pid],
            "simulated modems": [farm.pid],
        }
        rss_pids = {"snmp": [p.pid for p in snmps], "ingest": [ingest.pid]}
        rss_before = {name: [rss_mb(pid) for pid in pids] for name, pids in rss_pids.items()}
        cpu_before = {name: sum(map(cpu_s, pids)) for name, pids in cpu_pids.items()}
        busy_before = machine_busy_s()

        from campaigns import services
        from campaigns.api.serializers import CampaignStartSerializer
        from campaigns.models import CampaignRun, RunState
        from captures.models import Capture, CaptureState, Transaction

        start_request = CampaignStartSerializer(
            data={
                "name": "bench",
                "test": RXMER,
                "target": {"all": True},
                "channel_ids": [193],
                "max_in_flight": args.max_in_flight,
                "max_per_cmts": args.max_per_cmts,
                "retries": 1,
            }
        )
        start_request.is_valid(raise_exception=True)
        began = time.time()
        campaign = start_request.save()
        run = CampaignRun.objects.get(campaign=campaign)
        peak_connections = 0
        last_print = 0.0
        while time.time() < began + args.timeout:
            peak_connections = max(peak_connections, database_connections())
            run.refresh_from_db()
            if time.time() - last_print >= 10:
                print(f"  {time.time() - began:5.0f} s  {services.progress(run).line()}")
                last_print = time.time()
            if run.state != RunState.RUNNING:
                break
            time.sleep(0.5)
        elapsed = time.time() - began
        cpu = {name: sum(map(cpu_s, pids)) - cpu_before[name] for name, pids in cpu_pids.items()}
        busy = machine_busy_s() - busy_before
        rss_after = {name: [rss_mb(pid) for pid in pids] for name, pids in rss_pids.items()}
        counts = services.progress(run)
        stored = Transaction.objects.count()
        done_without_file = (
            run.items.filter(state="done").exclude(operation__collected__gte=1).count()
        )
        unrecorded = Capture.objects.filter(state=CaptureState.UPLOADED).count()
        # Files only: the receiver's working directories (.partial, .tftproot) stay.
        spool_left = sum(1 for path in (files / "spool").rglob("*") if path.is_file())
        took = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None

        print(
            f"{args.modems} modems in {args.cmts} CMTS groups, RxMER on 1 channel each, "
            f"max in flight {args.max_in_flight}, per CMTS {args.max_per_cmts}, "
            f"measurement {delay[0]}-{delay[1]} s; {args.snmp_procs} x snmp -P threads -c "
            f"{args.snmp_workers} ({args.tick_threads} tick threads), ingest -P threads -c "
            f"{args.ingest_workers}, database pool "
            f"{args.db_pool or 'off'}, arrival wait {args.arrival_wait} s; "
            f"farm of {args.modems} modems ready in {farm_ready_s:.1f} s"
        )
        print(
            f"  machine yardstick (fixed Python loop, best of 5): {yardstick_before:.0f} ms "
            f"before the run, {yardstick_ms():.0f} ms after"
        )
        print(f"  run {run.state}: {counts.line()}")
        print(
            "  completion time: "
            + (f"{took:.1f} s" if took is not None else f"not finished after {elapsed:.0f} s")
        )
        print(
            f"  goodput: {counts.done / elapsed:.1f} modems/s, {stored} files stored "
            f"({stored / elapsed:.1f}/s); failed by class {dict(counts.failed_by_class)}, "
            f"skipped {dict(counts.skipped_by_reason)}"
        )
        print(
            f"  lost: done without a file {done_without_file}, uploads never recorded "
            f"{unrecorded}, spool files left {spool_left}"
        )
        per_capture = {name: 1000 * value / max(1, stored) for name, value in cpu.items()}
        print(
            "  CPU per stored file (ms): "
            + ", ".join(f"{name} {value:.1f}" for name, value in per_capture.items())
            + f"; whole machine {1000 * busy / max(1, stored):.1f} "
            f"({busy / elapsed:.2f} of {os.cpu_count()} cores busy)"
        )
        print(f"  peak PostgreSQL connections (this database): {peak_connections}")
        for name, before in rss_before.items():
            print(
                f"  {name} worker RSS MB: "
                + ", ".join(
                    f"{b:.1f}->{a:.1f}" for b, a in zip(before, rss_after[name], strict=True)
                )
            )
        for pid in children(farm.pid):
            print(f"  (farm child process {pid} RSS {rss_mb(pid):.1f} MB)")
        print(f"  farm RSS MB: {rss_mb(farm.pid):.1f}")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except Exception:
                proc.kill()
        parent.send("stop")
        farm.join(15)
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
