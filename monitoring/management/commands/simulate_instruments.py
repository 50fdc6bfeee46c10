"""``manage.py simulate_instruments``: stream simulated beam position monitors to the
instrument listener (``simulators.instruments``), optionally registering them first."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from monitoring.services import register_bpms
from simulators.instruments import Monitor, monitor_names, stream


class Command(BaseCommand):
    help = "Stream simulated beam position monitors to the instrument listener over TCP."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=100, help="number of monitors")
        parser.add_argument("--rate", type=float, default=10.0, help="samples per second each")
        parser.add_argument(
            "--host", default=settings.MONITORING_LISTENER_HOST, help="the listener's address"
        )
        parser.add_argument(
            "--port", type=int, default=settings.MONITORING_LISTENER_PORT, help="its TCP port"
        )
        parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
        parser.add_argument("--prefix", default="BPM", help="monitor names are prefix + number")
        parser.add_argument(
            "--create", action="store_true", help="register the monitors as instruments first"
        )
        parser.add_argument(
            "--connect-timeout",
            type=float,
            default=60.0,
            help="seconds to keep trying to reach the listener before giving up",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count, rate = int(options["count"]), float(options["rate"])
        if count < 1 or not 0 < rate <= 1000:
            raise CommandError("--count must be ≥ 1 and --rate in (0, 1000]")
        names = monitor_names(count, str(options["prefix"]))
        if options["create"]:
            created = register_bpms(names)
            self.stdout.write(f"registered {created} new instrument(s) of {len(names)}")
        try:
            sent = stream(
                [Monitor.from_name(name) for name in names],
                rate=rate,
                address=(str(options["host"]), int(options["port"])),
                seconds=options["seconds"],
                connect_timeout=float(options["connect_timeout"]),
                token=settings.MONITORING_LISTENER_TOKEN,
            )
        except ConnectionError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"sent {sent} samples of {count} monitor(s) at {rate:g} Hz")
