"""Celery tasks of the monitoring app (thin wrappers; the work is in the services)."""

from __future__ import annotations

from celery import shared_task

from config.queues import Queue
from monitoring.retention import flush_retention as run_flush


@shared_task(name="monitoring.tasks.flush_retention", queue=Queue.MAINTENANCE)
def flush_retention() -> dict:
    """Run by beat every minute. Safe to run twice or concurrently: one runner, one transaction.
    The outcome is kept on RetentionState (and in the worker's log), not as a task result."""
    result = run_flush()
    return {
        "ran": result.ran,
        "cutoff": result.cutoff.isoformat(),
        "kept": result.kept,
        "removed": result.removed,
        "dropped": result.dropped,
    }
