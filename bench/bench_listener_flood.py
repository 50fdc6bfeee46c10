"""How much a flood on one connection delays another client's data at the listener.

``manage.py ingest_listener`` in its own process (throw-away database, 100 BPMs). A good
client streams 100 samples every 0.1 s stamped with the send time; after 3 s a second
connection sends 100 MB as fast as it can: random bytes, or with ``--well-formed`` lines
that look right but name an unknown instrument (they pass the listener's shape check and
are rejected by ingest). The lag of the good stream is sampled every 0.1 s as now minus the
newest stored timestamp; the figures are its maximum before and during the flood.
Bounded: about 45 s.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

from bench_monitoring_ingest import (
    _accepts,
    free_port,
    make_instruments,
    serve,
    throwaway_database,
    wait_for,
)
from django.db import connection

FLOOD_BYTES = 100 * 1024 * 1024
FLOOD_AFTER_S = 3.0
RUN_S = 25.0
TICK_S = 0.1


def newest_ts_ns() -> int | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(ts) FROM monitoring_sample")
        newest = cursor.fetchone()[0]
    return None if newest is None else int(newest.timestamp() * 1e9)


def good_client(port: int, names: list[str], stop: threading.Event) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        while not stop.wait(TICK_S):
            t = time.time_ns()
            conn.sendall(
                "".join(
                    f"bpm,instrument={n} top_in=1,bot_in=2,bot_out=3,top_out=4 {t}\n" for n in names
                ).encode()
            )


WELL_FORMED = b"bpm,instrument=NOPE top_in=1.5,bot_in=2.5,bot_out=3.5,top_out=4.5 1700000000\n"


def flood(port: int, result: dict) -> None:
    if "--well-formed" in sys.argv:
        garbage = WELL_FORMED * (FLOOD_BYTES // len(WELL_FORMED))
    else:
        garbage = os.urandom(FLOOD_BYTES)
    started = time.monotonic()
    sent = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            for offset in range(0, FLOOD_BYTES, 1024 * 1024):
                sent += conn.send(garbage[offset : offset + 1024 * 1024])
    except OSError as error:
        result["error"] = f"{type(error).__name__}: {error}"
    result.update(sent=sent, seconds=time.monotonic() - started)


def main() -> None:
    with throwaway_database("bench_listener_flood") as url:
        env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
        names = make_instruments()
        port = free_port()
        listener = serve(["manage.py", "ingest_listener", "--port", str(port)], env)
        stop, flood_result = threading.Event(), dict[str, float]()
        lags: list[tuple[float, float]] = []
        try:
            wait_for(lambda: _accepts(port), "the listener")
            sender = threading.Thread(target=good_client, args=(port, names, stop))
            sender.start()
            started = time.monotonic()
            flooder = threading.Thread(target=flood, args=(port, flood_result))
            while (elapsed := time.monotonic() - started) < RUN_S:
                if elapsed >= FLOOD_AFTER_S and not flooder.is_alive() and not flood_result:
                    flooder.start()
                newest = newest_ts_ns()
                if newest is not None:
                    lags.append((elapsed, time.time() - newest / 1e9))
                time.sleep(TICK_S)
            stop.set()
            sender.join(30)
            flooder.join(30)
        finally:
            stop.set()
            listener.terminate()
            try:
                listener.wait(15)
            except subprocess.TimeoutExpired:  # still forwarding what it had received
                listener.kill()
                listener.wait(15)
    before = max((lag for at, lag in lags if at < FLOOD_AFTER_S), default=float("nan"))
    during = max((lag for at, lag in lags if at >= FLOOD_AFTER_S), default=float("nan"))
    print(
        f"good stream lag, max before the flood: {before:.2f} s; from the flood on: {during:.2f} s"
    )
    print(f"flood: {flood_result}")


if __name__ == "__main__":
    main()
