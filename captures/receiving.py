"""What the TFTP receiver does with a complete upload: hand it to the staging task.

Kept apart from the management command so tests and benches run the same path.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

from captures import arrivals, services, storage
from captures.expectations import CacheExpectationStore
from core.heartbeats import record_heartbeat
from core.ingester import Item
from devices.links.tftp import TftpReceiver

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 5.0


def forward(item: Item) -> None:
    """Forward one complete file (``forward_together`` for one)."""
    forward_together([item])


def forward_together(items: list[Item]) -> None:
    """Mark the captures uploaded and queue their staging as one task; a file nobody
    wants is deleted. Idempotent: the receiver calls again with the same files when the
    database or the broker failed."""
    from captures.tasks import stage_captures  # tasks import this module's neighbours

    close_old_connections()  # a long-running thread: drop a connection a restart broke
    files: dict[int, Item] = {}
    for item in items:
        files.setdefault(item.meta["context"]["capture"], item)
    wanted = services.mark_uploaded({pk: str(item.path) for pk, item in files.items()})
    if wanted:
        stage_captures.delay(sorted(wanted))
        arrivals.announce(wanted)  # trigger tasks may be waiting for them
    for item in items:
        capture_pk = item.meta["context"]["capture"]
        if capture_pk in wanted and item.path == files[capture_pk].path:
            continue
        log.warning(
            "tftp: %s arrived for capture %s which no longer waits; deleted", item.key, capture_pk
        )
        if item.path:
            Path(item.path).unlink(missing_ok=True)


def heartbeat(name: str, snapshot: dict) -> None:
    record_heartbeat(name, snapshot, interval_s=HEARTBEAT_INTERVAL_S)


def build_receiver(
    host: str | None = None, port: int | None = None, dump_path: str | None = None
) -> TftpReceiver:
    """A receiver wired to the Django cache expectations and the staging task."""
    return TftpReceiver(
        forward,
        CacheExpectationStore(),
        storage.usable_spool_dir(),
        forward_together=forward_together,
        host=host or settings.PNM_TFTP_LISTEN_HOST,
        port=settings.PNM_TFTP_LISTEN_PORT if port is None else port,
        max_bytes=settings.PNM_MAX_UPLOAD_BYTES,
        heartbeat=heartbeat,
        heartbeat_interval_s=HEARTBEAT_INTERVAL_S,
        dump_path=dump_path,
        linger_s=settings.PNM_RECEIVER_LINGER_S,
    )
