"""Run N simulated cable modems (real SNMP agents that upload PNM files by TFTP) until SIGTERM."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from simulators.modem import Failure, ModemFarm, describe, parse_delay, parse_failures


class Command(BaseCommand):
    help = "Run simulated DOCSIS cable modems for tests, benches and the demo."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=3, help="number of modems")
        parser.add_argument(
            "--delay",
            type=parse_delay,
            default=1.0,
            metavar="SECONDS|MIN,MAX",
            help="measurement delay per capture, seconds; a range is drawn per measurement",
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="seed of the delay draws (default: random)"
        )
        parser.add_argument("--host", default="127.0.0.1", help="address of every modem")
        parser.add_argument("--port", type=int, default=0, help="UDP port (0: one per modem)")
        parser.add_argument(
            "--distinct-addresses",
            action="store_true",
            help="give modem i its own address 127.0.x.y (all on --port)",
        )
        parser.add_argument("--tftp-port", type=int, default=69, help="where uploads go")
        parser.add_argument(
            "--upload-workers", type=int, default=16, help="uploads sent at once (threads)"
        )
        parser.add_argument(
            "--upload-timeout", type=float, default=2.0, help="TFTP timeout per packet, seconds"
        )
        parser.add_argument(
            "--failure",
            action="append",
            default=[],
            metavar="INDEX=MODE",
            help=f"make one modem misbehave; MODE in {', '.join(f.value for f in Failure)}",
        )
        # Registration of the modems in the database (issue 3, captures side) adds its
        # flags here and calls its service with ``farm`` in ``handle`` below.

    def handle(self, *args: Any, **options: Any) -> None:
        farm = ModemFarm(
            options["count"],
            measure_delay_s=options["delay"],
            seed=options["seed"],
            host=options["host"],
            port=options["port"],
            distinct_addresses=options["distinct_addresses"],
            tftp_port=options["tftp_port"],
            upload_workers=options["upload_workers"],
            upload_timeout_s=options["upload_timeout"],
            failures=parse_failures(options["failure"]),
        ).start()
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        try:
            for line in describe(farm):
                self.stdout.write(line)
            self.stdout.write(f"seed {farm.seed}")  # to repeat this run's delays
            self.stdout.flush()
            stop.wait()
        finally:
            farm.stop()
        self.stdout.write("stopped")
