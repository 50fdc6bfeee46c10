"""The stream listener over real TCP, its dump, and ``manage.py replay`` of that dump."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection

from core.ingester import Item, read_dump
from monitoring.ingest import forward_item
from monitoring.listener import LineListener
from monitoring.models import Instrument
from tests.helpers import wait_until


def _table(name: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {name} ORDER BY 1, 2")  # noqa: S608 - test tables
        return cursor.fetchall()


def _lines(names: list[str], t0_ns: int, count: int) -> list[str]:
    return [
        f"bpm,instrument={name} top_in={k}.5,bot_in={-k},bot_out=1e-3,top_out={k}i "
        f"{t0_ns + k * 100_000_000}"
        for k in range(count)
        for name in names
    ]


def _forward(item):
    """The real forward; the listener thread's connection closes after each batch so the
    test database can be dropped at the end."""
    try:
        forward_item(item)
    finally:
        connection.close()


class BeatingListener(LineListener):
    """A listener whose heartbeats the test reads."""

    beats: list[dict]


@pytest.fixture
def listener(tmp_path):
    beats: list[dict] = []
    listener = BeatingListener(
        "instruments-test",
        _forward,
        heartbeat=lambda name, snapshot: beats.append(snapshot),
        heartbeat_interval_s=0.2,
        dump_path=tmp_path / "stream.jsonl",
        port=0,
        batch_s=0.2,
    )
    listener.beats = beats
    thread = threading.Thread(target=listener.run)
    thread.start()
    assert listener.ready.wait(10)
    yield listener
    listener.stop()
    thread.join(15)
    assert not thread.is_alive()


@pytest.mark.django_db(transaction=True)
def test_stream_is_stored_and_its_replay_stores_the_same_rows(listener):
    names = ["L1", "L2", "L3"]
    for name in names:
        Instrument.objects.create(name=name)
    t0 = time.time_ns() - 60 * 10**9
    good = _lines(names, t0, 40)
    untimed = "L1 top_in=1,bot_in=2,bot_out=3,top_out=4"  # stamped with the receive time
    bad = "bpm,instrument=NOPE top_in=1,bot_in=2,bot_out=3,top_out=4"
    stream_a = ("\n".join(good[:60]) + "\n" + bad + "\n").encode()
    stream_b = ("\n".join(good[60:]) + "\n" + untimed).encode()  # no final newline

    address = ("127.0.0.1", listener.port)
    with socket.create_connection(address, 5) as a, socket.create_connection(address, 5) as b:
        for i in range(0, len(stream_a), 333):  # lines cut across sends
            a.sendall(stream_a[i : i + 333])
        b.sendall(stream_b)

    expected = len(good) + 1
    wait_until(lambda: len(_table("monitoring_sample")) == expected, timeout=20)
    wait_until(lambda: listener.metrics.snapshot()["last_item_at"] is not None)
    sources = listener.snapshot()["sources"]["127.0.0.1"]
    assert sources["connections"] == 2
    assert sources["lines"] == len(good) + 2
    assert sources["bytes"] == len(stream_a) + len(stream_b) + 1  # + the closing newline
    wait_until(lambda: listener.beats and "sources" in listener.beats[-1])

    raw, snapshots = _table("monitoring_sample"), _table("monitoring_snapshot")
    assert {row[2] for row in raw if row[0] != Instrument.objects.get(name="L1").pk} == {
        k + 0.5 for k in range(40)
    }
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE monitoring_sample, monitoring_snapshot")
    assert _table("monitoring_sample") == []

    dump = listener.dump_path
    assert sum(len(item.payload.splitlines()) for item in read_dump(dump)) == len(good) + 2
    call_command("replay", str(dump))
    assert _table("monitoring_sample") == raw
    assert _table("monitoring_snapshot") == snapshots


def test_listener_stops_promptly_and_emits_what_it_had(tmp_path):
    items: list[Item] = []
    listener = LineListener("stop-test", items.append, port=0, batch_s=60)
    thread = threading.Thread(target=listener.run)
    thread.start()
    assert listener.ready.wait(10)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as conn:
        conn.sendall(b"a x=1 1\nb x=2 2\n")
        wait_until(lambda: listener.snapshot()["sources"].get("127.0.0.1", {}).get("lines") == 2)
        started = time.monotonic()
        listener.stop()
        thread.join(10)
    assert time.monotonic() - started < 2
    assert [item.payload for item in items] == [b"a x=1 1\nb x=2 2\n"]
