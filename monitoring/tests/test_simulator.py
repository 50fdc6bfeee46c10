"""The BPM simulator: its signals invert to the simulated orbit and it streams over TCP."""

from __future__ import annotations

import io
import itertools
import random
import socket
import threading

import pytest
from django.core.management import CommandError, call_command

from monitoring.bpm import BPM_KX_MM, BPM_KY_MM
from monitoring.models import Instrument
from simulators import instruments as sim


def position(values: tuple[float, ...]) -> tuple[float, float]:
    """The dashboard's difference-over-sum convention (position.js), in Python."""
    top_in, bot_in, bot_out, top_out = values
    total = sum(values)
    x = BPM_KX_MM * ((top_out + bot_out) - (top_in + bot_in)) / total
    y = BPM_KY_MM * ((top_in + top_out) - (bot_in + bot_out)) / total
    return x, y


def test_buttons_invert_to_the_simulated_orbit():
    monitor = sim.Monitor.from_name("BPM07")
    rng = random.Random(1)
    for t in (1_700_000_000.0, 1_700_000_123.4, 1_700_003_600.0):
        x, y = position(sim.buttons(monitor, t, rng))
        true_x, true_y = sim.orbit(monitor, t)
        # Button noise is ~0.1 % per button: about 20 µm of position noise at kx = 20 mm.
        assert x == pytest.approx(true_x, abs=0.15)
        assert y == pytest.approx(true_y, abs=0.08)


def test_monitors_are_reproducible_and_distinct():
    assert sim.Monitor.from_name("BPM01") == sim.Monitor.from_name("BPM01")
    assert sim.Monitor.from_name("BPM01") != sim.Monitor.from_name("BPM02")


def test_beam_current_is_common_and_refilled():
    assert sim.beam_current(0.0) == pytest.approx(1.0)
    assert sim.beam_current(sim.TOP_UP_PERIOD_S - 0.1) < sim.beam_current(sim.TOP_UP_PERIOD_S)


def test_line_protocol_record():
    monitor = sim.Monitor.from_name("BPM03")
    record = sim.line(monitor, 1_700_000_000_100_000_000, (1.0, 2.0, 3.5, 4.0))
    assert record == (
        "bpm,instrument=BPM03 top_in=1.0,bot_in=2.0,bot_out=3.5,top_out=4.0 1700000000100000000"
    )


def test_monitor_names_sort_in_number_order():
    assert sim.monitor_names(3, "BPM") == ["BPM01", "BPM02", "BPM03"]
    assert sim.monitor_names(100, "B")[-1] == "B100"


class LineServer:
    """A TCP server on port 0 that keeps every line it receives."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.data = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(10)
        with conn:
            while chunk := conn.recv(65536):
                self.data += chunk

    def lines(self) -> list[str]:
        self.thread.join(timeout=10)
        self.sock.close()
        return self.data.decode().splitlines()


def test_streams_every_monitor_at_the_rate_for_the_given_time():
    server = LineServer()
    call_command(
        "simulate_instruments",
        "--count=5",
        "--rate=10",
        f"--port={server.port}",
        "--seconds=1",
        "--prefix=SIM",
    )
    lines = server.lines()
    assert len(lines) == 5 * 10
    per_monitor: dict[str, list[int]] = {}
    for record in lines:
        tags, fields, stamp = record.split(" ")
        assert fields.count("=") == 4
        per_monitor.setdefault(tags.split("instrument=")[1], []).append(int(stamp))
    assert sorted(per_monitor) == ["SIM01", "SIM02", "SIM03", "SIM04", "SIM05"]
    for stamps in per_monitor.values():
        assert [b - a for a, b in itertools.pairwise(stamps)] == [100_000_000] * 9


def test_gives_up_when_no_listener_answers():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(CommandError, match="cannot reach the listener"):
        call_command("simulate_instruments", f"--port={port}", "--connect-timeout=0.5")


@pytest.mark.django_db
def test_create_registers_the_monitors_once():
    for expected in ("registered 3 new", "registered 0 new"):
        server = LineServer()
        out = io.StringIO()
        call_command(
            "simulate_instruments",
            "--count=3",
            "--create",
            f"--port={server.port}",
            "--seconds=0.2",
            stdout=out,
        )
        assert len(server.lines()) == 3 * 2
        assert expected in out.getvalue()
    monitors = Instrument.objects.filter(name__startswith="BPM").order_by("name")
    assert [(m.name, m.kind, m.channels) for m in monitors] == [
        (name, "bpm", ["top_in", "bot_in", "bot_out", "top_out"])
        for name in ("BPM01", "BPM02", "BPM03")
    ]


def test_reconnects_when_the_listener_drops_the_connection():
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def drop_then_keep() -> None:
        first, _ = server.accept()
        first.recv(1024)
        first.close()  # the listener restarts
        second, _ = server.accept()
        second.settimeout(10)
        with second:
            while chunk := second.recv(65536):
                received.append(chunk)

    thread = threading.Thread(target=drop_then_keep, daemon=True)
    thread.start()
    call_command(
        "simulate_instruments",
        "--count=2",
        f"--port={server.getsockname()[1]}",
        "--seconds=1.5",
        "--connect-timeout=5",
        stdout=io.StringIO(),
    )
    thread.join(timeout=10)
    server.close()
    lines = b"".join(received).decode().splitlines()
    assert lines, "nothing arrived after the reconnect"
    assert all(record.startswith("bpm,instrument=BPM0") for record in lines)
    assert len(lines) < 2 * 15
