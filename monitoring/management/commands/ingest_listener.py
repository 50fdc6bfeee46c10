"""``manage.py ingest_listener``: the instrument stream listener, until SIGTERM/SIGINT."""

from __future__ import annotations

import ipaddress
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.heartbeats import record_heartbeat
from monitoring.ingest import forward_item
from monitoring.listener import LineListener

HEARTBEAT_INTERVAL_S = 5.0


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Command(BaseCommand):
    help = "Receive instrument samples as line protocol over TCP and store them every second."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", default="instruments", help="ingester name (heartbeats)")
        parser.add_argument("--host", default=settings.MONITORING_LISTENER_HOST)
        parser.add_argument(
            "--port", type=int, default=settings.MONITORING_LISTENER_PORT, help="0: any free port"
        )
        parser.add_argument(
            "--batch-seconds", type=float, default=settings.MONITORING_LISTENER_BATCH_S
        )
        parser.add_argument(
            "--dump",
            default=settings.MONITORING_LISTENER_DUMP or None,
            help="also append every batch received to this replayable JSONL file",
        )

    def handle(self, *args, **options) -> None:
        token, allow = settings.MONITORING_LISTENER_TOKEN, settings.MONITORING_LISTENER_ALLOW
        if not (token or allow or is_loopback(options["host"])):
            raise CommandError(
                f"the listener on {options['host']} would take data from anyone: set "
                "MONITORING_LISTENER_TOKEN or MONITORING_LISTENER_ALLOW (or listen on 127.0.0.1)"
            )
        listener = LineListener(
            options["name"],
            forward_item,
            heartbeat=lambda name, snapshot: record_heartbeat(
                name, snapshot, interval_s=HEARTBEAT_INTERVAL_S
            ),
            heartbeat_interval_s=HEARTBEAT_INTERVAL_S,
            dump_path=options["dump"],
            host=options["host"],
            port=options["port"],
            batch_s=options["batch_seconds"],
            token=token,
            allow=allow,
            max_connections=settings.MONITORING_LISTENER_MAX_CONNECTIONS,
            idle_timeout_s=settings.MONITORING_LISTENER_IDLE_TIMEOUT_S,
            max_bad_lines=settings.MONITORING_LISTENER_MAX_BAD_LINES,
            max_bytes_per_s=settings.MONITORING_LISTENER_MAX_BYTES_PER_S,
        )
        listener.install_signal_handlers()
        threading.Thread(target=self._announce, args=(listener,), daemon=True).start()
        listener.run()
        self.stdout.write(f"listener stopped: {listener.snapshot()}")

    def _announce(self, listener: LineListener) -> None:
        if listener.ready.wait(30):
            self.stdout.write(f"listening on {listener.host}:{listener.port}")
            self.stdout.flush()
