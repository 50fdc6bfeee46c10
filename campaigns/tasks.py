"""Celery tasks of campaigns: thin wrappers around services, ids in.

Queues: the dispatcher and a run's scheduled start -> maintenance (the dispatcher from beat,
every second). A modem's summary needs no task: it is combined as its operation ends.
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
