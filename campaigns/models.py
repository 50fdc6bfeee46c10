"""A campaign (what to capture on which modems, within which limits, when), its runs and
one item per modem a run has reached.

Items are created lazily, a bounded window ahead of dispatch, so a 100k-modem target is
never expanded up front. A run's plan (``planned``) is fixed when it starts; its outcome is
counted from the items, so the two are stored apart and compared, never made to agree.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q

from captures.models import Operation
from devices.models import CableModem


def new_hex_id() -> str:
    return secrets.token_hex(8)


class ScheduleKind(models.TextChoices):
    NOW = "now"  # one run, started on creation
    AT = "at"  # one run at ``start_at``
    RECURRING = "recurring"  # a run at every ``crontab`` match (beat)
    MANUAL = "manual"  # runs only when asked (API ``run``, CLI, admin)


class Campaign(models.Model):
    campaign_id = models.CharField(max_length=16, unique=True, default=new_hex_id)
    name = models.CharField(max_length=100)
    # {"modems": [ids]} | {"filter": {"cmts": [...], "tag": ..., ...}} | {"all": true}
    target = models.JSONField()
    # What each modem runs: ``start_operation``'s arguments without the modem (the API's
    # checked start plan: name, measure_mode, test, parameters, duration_s, ...).
    plan = models.JSONField()
    max_in_flight = models.PositiveIntegerField(help_text="captures in flight, whole campaign")
    max_per_cmts = models.PositiveIntegerField(help_text="captures in flight per CMTS")
    retries = models.PositiveSmallIntegerField(help_text="extra attempts per modem")
    mer_threshold_db = models.FloatField(help_text="RxMER summaries count subcarriers below it")
    schedule = models.CharField(max_length=16, choices=ScheduleKind.choices)
    start_at = models.DateTimeField(null=True, blank=True)
    crontab = models.CharField(
        max_length=100, blank=True, help_text="minute hour day-of-month month day-of-week (UTC)"
    )
    enabled = models.BooleanField(default=True, help_text="scheduled runs start (at/recurring)")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.campaign_id})"

    @property
    def schedule_name(self) -> str:
        """The name of its django-celery-beat PeriodicTask (at / recurring)."""
        return f"pnm-campaign-{self.campaign_id}"

    @property
    def test(self) -> str:
        """The family (multi) or test (single) each modem runs."""
        return str(
            self.plan["name"] if self.plan["name"] != "single_capture" else self.plan["test"]
        )


class RunState(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"  # every planned modem has its capture
    COMPLETED_PARTIAL = "completed_partial"  # some modems failed or were skipped
    FAILED = "failed"  # not one modem captured
    CANCELLED = "cancelled"  # stopped by an operator


class CampaignRun(models.Model):
    run_id = models.CharField(max_length=16, unique=True, default=new_hex_id)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="runs")
    state = models.CharField(max_length=20, choices=RunState.choices, default=RunState.RUNNING)
    planned = models.PositiveIntegerField(help_text="modems in the target when the run started")
    # The target as it stood at the start: ids up to this one (later modems are not in it).
    last_modem_id = models.PositiveBigIntegerField()
    cursor = models.PositiveBigIntegerField(default=0, help_text="items exist up to this modem id")
    expanded = models.BooleanField(default=False, help_text="every target modem has its item")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"{self.campaign.name} run {self.run_id} {self.state}"


class ItemState(models.TextChoices):
    QUEUED = "queued"  # reached by the run, waiting for room under the caps
    RUNNING = "running"  # its operation runs
    DONE = "done"  # captured and summarised
    FAILED = "failed"  # no capture after every attempt (``error_class``)
    SKIPPED = "skipped"  # not attempted to the end: busy, unsupported, removed (``error_class``)
    CANCELLED = "cancelled"  # the run was stopped


OPEN_ITEM_STATES = (ItemState.QUEUED, ItemState.RUNNING)


class CampaignItem(models.Model):
    run = models.ForeignKey(CampaignRun, on_delete=models.CASCADE, related_name="items")
    modem = models.ForeignKey(CableModem, on_delete=models.SET_NULL, null=True, blank=True)
    mac_address = models.CharField(max_length=17)
    cmts = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=12, choices=ItemState.choices, default=ItemState.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    operation = models.OneToOneField(
        Operation, on_delete=models.SET_NULL, null=True, blank=True, related_name="campaign_item"
    )
    error_class = models.CharField(max_length=80, blank=True)
    error = models.TextField(blank=True)
    # The summary (``captures.analyses.fleet``): one ranking value and every figure.
    metric = models.CharField(max_length=40, blank=True)
    value = models.FloatField(null=True, blank=True)
    worse = models.CharField(max_length=6, blank=True, help_text="lower or higher value is worse")
    figures = models.JSONField(null=True, blank=True)
    summarised = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "modem"], name="campaignitem_one_per_modem"),
        ]
        indexes = [
            models.Index(fields=["run", "state"]),
            models.Index(
                fields=["run", "cmts"], condition=Q(state="running"), name="item_in_flight"
            ),
            models.Index(fields=["run", "value"]),
        ]

    def __str__(self) -> str:
        return f"{self.mac_address} {self.state}"
