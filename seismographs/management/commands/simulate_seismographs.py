"""Run simulated MiniMate seismographs (TCP "modem" units and pty "serial" units) until
SIGTERM, printing each unit's conn_key; ``--register`` also adds them as devices."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from devices.simulators.seismograph import SeismographSimulator
from seismographs.models import Seismograph

SERIAL_IDLE_GAP_S = 0.2  # a direct line has no modem forwarding buffer to wait out


def start_simulators(
    tcp: int = 1, pty: int = 1, events: int = 3, time_scale: float = 1.0
) -> list[SeismographSimulator]:
    """Start ``tcp`` + ``pty`` units, each with ``events`` recorded events."""
    sims = []
    for i in range(tcp + pty):
        transport = "tcp" if i < tcp else "pty"
        prefix = "BE" if transport == "tcp" else "BA"
        sims.append(
            SeismographSimulator(
                transport=transport,
                serial=f"{prefix}{18189 + i}",
                events=events,
                time_scale=time_scale,
            ).start()
        )
    return sims


def register(sims: list[SeismographSimulator]) -> list[Seismograph]:
    """Add (or re-point) one device per simulator. A pty gets a new path every run, so the
    row is found by its name and its conn_key updated rather than piling up rows."""
    devices = []
    for sim in sims:
        name = f"Simulated {sim.unit.identity.serial} ({sim.transport})"
        idle_gap = SERIAL_IDLE_GAP_S if sim.transport == "pty" else None
        device = Seismograph.objects.filter(name=name).first() or Seismograph(name=name)
        Seismograph.objects.filter(conn_key=sim.conn_key).exclude(pk=device.pk).delete()
        device.conn_key = sim.conn_key
        device.idle_gap_s = idle_gap
        device.save()
        devices.append(device)
    return devices


class Command(BaseCommand):
    help = "Run simulated seismographs (one over TCP, one over a pty by default) until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tcp", type=int, default=1, help="units behind a TCP 'modem'")
        parser.add_argument("--pty", type=int, default=1, help="units on a pty 'serial line'")
        parser.add_argument("--events", type=int, default=3, help="events recorded at start")
        parser.add_argument(
            "--time-scale", type=float, default=1.0, help="link delays x this (1 = realistic)"
        )
        parser.add_argument("--register", action="store_true", help="add them as devices")

    def handle(self, *args: Any, **options: Any) -> None:
        sims = start_simulators(
            options["tcp"], options["pty"], options["events"], options["time_scale"]
        )
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        try:
            if options["register"]:
                register(sims)
            for sim in sims:
                self.stdout.write(f"{sim.conn_key} serial={sim.unit.identity.serial}")
            self.stdout.flush()
            stop.wait()
        finally:
            for sim in sims:
                sim.stop()
        self.stdout.write("stopped")
