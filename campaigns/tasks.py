"""Celery tasks of campaigns: thin wrappers around services, ids in.

Queues: the dispatcher -> maintenance (beat, every second), summaries -> ingest (they read
stored files, as staging does). A run's scheduled start -> maintenance.
"""

from __future__ import annotations

from celery import shared_task

from campaigns import services
from campaigns.models import Campaign
from config.queues import Queue


@shared_task(name="campaigns.tasks.dispatch_campaigns", queue=Queue.MAINTENANCE)
def dispatch_campaigns() -> dict[str, str]:
    """One dispatcher pass. Returns each running run's progress line, which Flower shows as
    the task's result (from its events; nothing is stored)."""
    return services.dispatch()


@shared_task(name="campaigns.tasks.start_campaign_run", queue=Queue.MAINTENANCE)
def start_campaign_run(campaign_pk: int) -> str:
    """A scheduled run (beat: once at a time, or on a crontab). Returns the run id."""
    campaign = Campaign.objects.filter(pk=campaign_pk, enabled=True).first()
    if campaign is None:
        return ""
    run = services.start_scheduled_run(campaign)
    return run.run_id if run else ""


@shared_task(name="campaigns.tasks.summarise_item", queue=Queue.INGEST, acks_late=True)
def summarise_item(item_pk: int) -> bool:
    """One modem's summary, from its files as they were stored (idempotent)."""
    return services.summarise_item(item_pk)
