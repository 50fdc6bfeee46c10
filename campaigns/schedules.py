"""The django-celery-beat entry of a scheduled campaign: one PeriodicTask per campaign,
clocked (``at``: one run, then disabled by beat) or on a crontab (``recurring``).
Campaigns started now or by hand have none."""

from __future__ import annotations

import json

from celery.schedules import crontab
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask

from campaigns.models import Campaign, ScheduleKind

START_TASK = "campaigns.tasks.start_campaign_run"


def parse_crontab(text: str) -> dict[str, str]:
    """``"0 2 * * *"`` -> CrontabSchedule fields; ValueError naming what is wrong."""
    fields = text.split()
    if len(fields) != 5:
        raise ValueError("five fields: minute hour day-of-month month day-of-week")
    names = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    values = dict(zip(names, fields, strict=True))
    crontab(**values)  # raises ValueError for a field it cannot read
    return values


def install(campaign: Campaign) -> PeriodicTask | None:
    """Make the beat entry match the campaign's schedule (none for now/manual)."""
    if campaign.schedule not in (ScheduleKind.AT, ScheduleKind.RECURRING):
        remove(campaign)
        return None
    timing: dict[str, object] = {"clocked": None, "crontab": None, "one_off": False}
    if campaign.schedule == ScheduleKind.AT:
        if campaign.start_at is None:
            raise ValueError("a campaign scheduled 'at' needs start_at")
        timing["clocked"], _ = ClockedSchedule.objects.get_or_create(clocked_time=campaign.start_at)
        timing["one_off"] = True
    else:
        fields = parse_crontab(campaign.crontab)
        timing["crontab"], _ = CrontabSchedule.objects.get_or_create(
            minute=fields["minute"],
            hour=fields["hour"],
            day_of_month=fields["day_of_month"],
            month_of_year=fields["month_of_year"],
            day_of_week=fields["day_of_week"],
            timezone="UTC",
        )
    task, _ = PeriodicTask.objects.update_or_create(
        name=campaign.schedule_name,
        defaults={
            "task": START_TASK,
            "args": json.dumps([campaign.pk]),
            "enabled": campaign.enabled,
            **timing,
        },
    )
    return task


def remove(campaign: Campaign) -> None:
    for task in PeriodicTask.objects.filter(name=campaign.schedule_name):
        task.delete()  # per instance, so beat's change counter is bumped
