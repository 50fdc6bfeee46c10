"""Run the PNM TFTP receiver until SIGTERM/SIGINT (its own long-running process)."""

from __future__ import annotations

import threading

from django.core.management.base import BaseCommand

from captures.receiving import build_receiver


class Command(BaseCommand):
    help = "Receive expected PNM uploads over TFTP and queue their staging."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", help="listen address (default PNM_TFTP_LISTEN_HOST)")
        parser.add_argument(
            "--port", type=int, help="UDP port, 0 for any free one (default PNM_TFTP_LISTEN_PORT)"
        )
        parser.add_argument("--dump", help="also write every received file to this JSONL dump")

    def handle(self, *args, host=None, port=None, dump=None, **options) -> None:
        receiver = build_receiver(host=host, port=port, dump_path=dump)
        receiver.install_signal_handlers()
        announce = threading.Thread(target=self._announce, args=(receiver,), daemon=True)
        announce.start()
        receiver.run()
        self.stdout.write(f"tftp receiver stopped: {receiver.metrics.snapshot()}")

    def _announce(self, receiver) -> None:
        port = receiver.bound_port
        self.stdout.write(f"tftp receiver listening on {receiver.host}:{port}", ending="\n")
        self.stdout.flush()
