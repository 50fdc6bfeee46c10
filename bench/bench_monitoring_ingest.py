"""Instrument ingest into PostgreSQL: samples/s through the HTTP API and through the listener.

Creates a throw-away database (``bench_monitoring_<pid>`` next to DATABASE_URL's) with 100
BPM instruments. API: a gunicorn server (2 sync workers) receives 40 line-protocol batches
of 10,000 samples (one second of 100 instruments at 10 Hz is 1,000 samples; these batches
are 10 s each) from 2 client threads over HTTP with token auth. Listener: ``manage.py
ingest_listener`` in its own process gets 500,000 lines over one TCP connection as fast as
the sender can write; the clock stops when the last row is in the database. Both figures
include parsing, validation, the binary COPY and the snapshot merge. Goal: >= 100k
samples/s. Bounded: about 1 min.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

INSTRUMENTS = 100
API_BATCHES = 40
API_BATCH_LINES = 10_000
API_CLIENTS = 2
LISTENER_LINES = 500_000
TIMEOUT_S = 120


@contextmanager
def throwaway_database(name: str) -> Iterator[str]:
    """A migrated database of its own; yields its URL for the processes the bench starts."""
    connection.settings_dict["TEST"]["NAME"] = f"{name}_{os.getpid()}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    if db["PASSWORD"]:
        url = url.replace("@", f":{db['PASSWORD']}@", 1)
    try:
        yield url
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def make_instruments() -> list[str]:
    from monitoring.models import Instrument

    names = [f"B{i:03d}" for i in range(INSTRUMENTS)]
    Instrument.objects.bulk_create([Instrument(name=n, channels=[]) for n in names])
    for instrument in Instrument.objects.all():
        instrument.save()  # fills the BPM channels
    return names


def lines(names: list[str], t0_ns: int, first: int, count: int) -> bytes:
    """``count`` samples: 10 Hz per instrument, instruments interleaved as live data is."""
    out = []
    for k in range(first, first + count):
        tick, name = divmod(k, len(names))
        t = t0_ns + tick * 100_000_000
        out.append(
            f"bpm,instrument={names[name]} top_in={k % 997}.25,bot_in={k % 991}.5,"
            f"bot_out={k % 983}.75,top_out={k % 977} {t}"
        )
    return ("\n".join(out) + "\n").encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(args: list[str], env: dict) -> subprocess.Popen:
    """A server process of this project (quiet; the caller terminates it)."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def sample_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM monitoring_sample")
        return cursor.fetchone()[0]


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def bench_api(env: dict, names: list[str], t0_ns: int) -> float:
    from django.contrib.auth import get_user_model

    from accounts.models import ApiToken
    from accounts.roles import grant

    user = get_user_model().objects.create_user("bench-collector")
    grant(user, "integrator")
    _, token = ApiToken.objects.issue(user, "bench", {"ingest"})
    port = free_port()
    server = serve(["-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"], env)
    try:
        wait_for(lambda: _accepts(port), "gunicorn")
        bodies = [
            lines(names, t0_ns, b * API_BATCH_LINES, API_BATCH_LINES) for b in range(API_BATCHES)
        ]
        started = time.perf_counter()
        threads = [
            threading.Thread(target=_post_all, args=(port, token, bodies[c::API_CLIENTS]))
            for c in range(API_CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT_S)
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(15)
    stored = sample_count()
    assert stored == API_BATCHES * API_BATCH_LINES, stored
    return stored / elapsed


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _post_all(port: int, token: str, bodies: list[bytes]) -> None:
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "text/plain", "Authorization": f"Token {token}"}
    for body in bodies:
        client.request("POST", "/api/v1/monitoring/samples?precision=ns", body, headers)
        response = client.getresponse()
        payload = response.read()
        if response.status != 201:
            raise SystemExit(f"API answered {response.status}: {payload[:300]!r}")
    client.close()


def bench_listener(env: dict, names: list[str], t0_ns: int) -> tuple[float, float]:
    """(samples/s end to end, samples/s the sender managed)."""
    before = sample_count()
    port = free_port()
    # The path's throughput, not one connection's byte budget (README: the stream listener).
    env = {**env, "MONITORING_LISTENER_MAX_BYTES_PER_S": "0"}
    listener = serve(["manage.py", "ingest_listener", "--port", str(port)], env)
    try:
        wait_for(lambda: _accepts(port), "the listener")
        chunks = [lines(names, t0_ns, before + i, 50_000) for i in range(0, LISTENER_LINES, 50_000)]
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            for chunk in chunks:
                conn.sendall(chunk)
        sent = time.perf_counter() - started
        wait_for(lambda: sample_count() == before + LISTENER_LINES, "the listener's rows")
        elapsed = time.perf_counter() - started
    finally:
        listener.terminate()
        listener.wait(15)
    return LISTENER_LINES / elapsed, LISTENER_LINES / sent


def main() -> None:
    with throwaway_database("bench_monitoring") as url:
        env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
        names = make_instruments()
        t0_ns = time.time_ns() - 3600 * 10**9  # an hour ago: neither future nor expired
        api_rate = bench_api(env, names, t0_ns)
        listener_rate, send_rate = bench_listener(env, names, t0_ns)
    print(f"API (HTTP, gunicorn -w 2, {API_CLIENTS} clients, {API_BATCH_LINES}-line batches):")
    print(f"  {api_rate:,.0f} samples/s ({API_BATCHES * API_BATCH_LINES:,} samples)")
    print(f"listener (TCP, 1 connection, ~1 s batches): {listener_rate:,.0f} samples/s")
    print(f"  ({LISTENER_LINES:,} samples; the sender alone wrote {send_rate:,.0f} lines/s)")


if __name__ == "__main__":
    main()
