"""Run simulated MiniMate seismographs (TCP "modem" units and pty "serial" units) until
SIGTERM, printing each unit's conn_key; ``--register`` also adds them as devices."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from seismographs.services import register_simulators
from simulators.seismograph import start_simulators


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
                register_simulators(sims)
            for sim in sims:
                self.stdout.write(f"{sim.conn_key} serial={sim.unit.identity.serial}")
            self.stdout.flush()
            stop.wait()
        finally:
            for sim in sims:
                sim.stop()
        self.stdout.write("stopped")
