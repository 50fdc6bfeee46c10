"""Platform tasks."""

from __future__ import annotations

from celery import shared_task

from config.models import WorkerPing


@shared_task(bind=True)
def record_worker_ping(self, token: str) -> int:
    """Write a WorkerPing row; running twice with the same token keeps one row."""
    ping, _ = WorkerPing.objects.get_or_create(
        token=token, defaults={"hostname": self.request.hostname or "unknown"}
    )
    return ping.pk
