"""Run simulated modems, register them, and start one multi-RxMER operation (make demo)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from captures.demo import register_farm, start_rxmer
from simulators.modem import ModemFarm, describe


class Command(BaseCommand):
    help = "Simulated modems uploading to our TFTP receiver, plus one running operation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=3, help="number of modems")
        parser.add_argument("--delay", type=float, default=1.0, help="measurement delay, s")
        parser.add_argument(
            "--tftp-port",
            type=int,
            default=None,
            help="where the modems upload (default PNM_TFTP_LISTEN_PORT)",
        )
        parser.add_argument("--duration", type=int, default=600, help="operation duration, s")
        parser.add_argument("--interval", type=int, default=10, help="sample interval, s")

    def handle(self, *args: Any, **options: Any) -> None:
        tftp_port = options["tftp_port"] or settings.PNM_TFTP_LISTEN_PORT
        farm = ModemFarm(
            options["count"], measure_delay_s=options["delay"], tftp_port=tftp_port
        ).start()
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        try:
            modems = register_farm(farm)
            (operation,) = start_rxmer(modems[:1], options["duration"], options["interval"])
            for line in describe(farm):
                self.stdout.write(line)
            self.stdout.write(
                f"operation {operation.operation_id} (multi_rxmer) running on {modems[0]}: "
                f"GET /api/v1/captures/operations/{operation.operation_id}/status/"
            )
            self.stdout.flush()
            stop.wait()
        finally:
            farm.stop()
