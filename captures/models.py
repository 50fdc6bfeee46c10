"""PNM operations, capture groups, captures (one expected file each) and transactions.

The three levels of PyPNM's JSON manifests (operation -> capture group -> transaction)
become rows with foreign keys. ``Capture`` is ours: one row per file a trigger asked for,
created before the SNMP trigger, so an upload that never arrives is a visible failure and
a duplicated trigger or staging task hits a unique constraint instead of a second row.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q


def new_hex_id() -> str:
    """A 16-hex id, the form users know from PyPNM records."""
    return secrets.token_hex(8)


class PnmTestType(models.TextChoices):
    """The PNM test of one file, spelled as PyPNM's ``pnm_test_type``."""

    DS_OFDM_RXMER_PER_SUBCAR = "DS_OFDM_RXMER_PER_SUBCAR"
    DS_OFDM_CHAN_EST_COEF = "DS_OFDM_CHAN_EST_COEF"


class OperationName(models.TextChoices):
    MULTI_RXMER = "multi_rxmer"
    MULTI_DS_CHANNEL_ESTIMATION = "multi_ds_channel_estimation"


# The one test each operation family captures on every tick.
OPERATION_TEST: dict[str, PnmTestType] = {
    OperationName.MULTI_RXMER: PnmTestType.DS_OFDM_RXMER_PER_SUBCAR,
    OperationName.MULTI_DS_CHANNEL_ESTIMATION: PnmTestType.DS_OFDM_CHAN_EST_COEF,
}


class MeasureMode(models.TextChoices):
    CONTINUOUS = "continuous"  # multi_rxmer: RxMER every tick
    STANDARD = "standard"  # multi_ds_channel_estimation


# Measure modes each family accepts (PyPNM's OFDM performance-1 needs mod-profile and
# FEC-summary captures, which are not built yet).
OPERATION_MODES = {
    OperationName.MULTI_RXMER: (MeasureMode.CONTINUOUS,),
    OperationName.MULTI_DS_CHANNEL_ESTIMATION: (MeasureMode.STANDARD,),
}


class OperationState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    CANCELLED = "cancelled"
    FAILED = "failed"


TERMINAL_STATES = (
    OperationState.COMPLETED,
    OperationState.STOPPED,
    OperationState.CANCELLED,
    OperationState.FAILED,
)


class CaptureGroup(models.Model):
    """The files of one operation, as PyPNM groups them."""

    capture_group_id = models.CharField(max_length=16, unique=True, default=new_hex_id)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.capture_group_id


class Operation(models.Model):
    """A multi-capture run on one modem: a fixed-rate tick until the duration ends."""

    operation_id = models.CharField(max_length=16, unique=True, default=new_hex_id)
    name = models.CharField(max_length=40, choices=OperationName.choices)
    measure_mode = models.CharField(max_length=32, choices=MeasureMode.choices)
    modem = models.ForeignKey(
        "devices.CableModem", on_delete=models.PROTECT, related_name="operations"
    )
    capture_group = models.OneToOneField(
        CaptureGroup, on_delete=models.PROTECT, related_name="operation"
    )
    # {"mac_address": ..., "system_description": {HW_REV, VENDOR, BOOTR, SW_REV, MODEL}}
    metadata = models.JSONField(default=dict, blank=True)
    channel_ids = models.JSONField(
        null=True, blank=True, help_text="OFDM channel ids to capture; all when empty"
    )
    duration_s = models.PositiveIntegerField()
    sample_interval_s = models.PositiveIntegerField()
    state = models.CharField(
        max_length=16, choices=OperationState.choices, default=OperationState.PENDING
    )
    collected = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="captures that produced no file")
    expected = models.PositiveIntegerField(default=0)
    # Seconds left when last written: at each tick, and frozen at a terminal state.
    time_remaining = models.PositiveIntegerField(default=0)
    # The highest tick a trigger task has claimed; makes a duplicated tick a no-op.
    last_tick = models.PositiveIntegerField(default=0)
    last_tick_at = models.DateTimeField(null=True, blank=True)
    # Set once the final tick's trigger has finished (succeeded or failed): only then can
    # "no open captures" mean the operation is complete.
    final_tick_done = models.BooleanField(default=False)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["state", "ends_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(sample_interval_s__gte=1)
                & Q(duration_s__gte=models.F("sample_interval_s")),
                name="operation_duration_covers_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.operation_id} {self.name} {self.state}"

    @property
    def test_type(self) -> str:
        return OPERATION_TEST[self.name]

    @property
    def total_ticks(self) -> int:
        """Ticks at interval, 2*interval, ... within the duration, plus the final capture."""
        return self.duration_s // self.sample_interval_s + 1

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def schedule_name(self) -> str:
        """The name of this operation's django-celery-beat PeriodicTask."""
        return f"pnm-operation-{self.operation_id}"


class CaptureState(models.TextChoices):
    PENDING = "pending"  # triggered, upload expected
    UPLOADED = "uploaded"  # complete file in the spool, staging queued
    STORED = "stored"  # transaction recorded
    FAILED = "failed"
    CANCELLED = "cancelled"  # operation stopped before the file came


class Capture(models.Model):
    """One file a trigger asked a modem for: (operation, tick, channel) is unique."""

    # Indexed by the (operation, tick, channel_id) constraint; no separate FK index.
    operation = models.ForeignKey(
        Operation, on_delete=models.CASCADE, related_name="captures", db_index=False
    )
    tick = models.PositiveIntegerField()
    channel_id = models.PositiveIntegerField()
    if_index = models.PositiveIntegerField()
    file_name = models.CharField(max_length=200, unique=True)
    state = models.CharField(
        max_length=16, choices=CaptureState.choices, default=CaptureState.PENDING
    )
    spool_path = models.CharField(max_length=500, blank=True)
    triggered_at = models.DateTimeField()
    deadline = models.DateTimeField(help_text="the upload must have arrived by then")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["tick", "channel_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["operation", "tick", "channel_id"], name="capture_one_per_tick_channel"
            ),
        ]
        indexes = [
            models.Index(
                fields=["deadline"],
                name="capture_open_deadline",
                condition=Q(state__in=["pending", "uploaded"]),
            ),
        ]

    def __str__(self) -> str:
        return self.file_name


class Transaction(models.Model):
    """One stored PNM file; the feed downstream tools read instead of transactions.json."""

    transaction_id = models.CharField(max_length=16, unique=True, default=new_hex_id)
    capture = models.OneToOneField(Capture, on_delete=models.PROTECT, related_name="transaction")
    capture_group = models.ForeignKey(
        CaptureGroup, on_delete=models.PROTECT, related_name="transactions"
    )
    # Indexed by the (modem, id) index of the feed; no separate FK index.
    modem = models.ForeignKey(
        "devices.CableModem", on_delete=models.PROTECT, related_name="transactions", db_index=False
    )
    timestamp = models.DateTimeField(help_text="when the file was staged")
    mac_address = models.CharField(max_length=17)
    pnm_test_type = models.CharField(max_length=40, choices=PnmTestType.choices)
    channel_id = models.PositiveIntegerField()
    filename = models.CharField(max_length=220, unique=True, help_text="stored name (.zst)")
    stored_path = models.CharField(max_length=500, help_text="relative to the storage root")
    is_compressed = models.BooleanField(default=True)
    codec = models.CharField(max_length=16, default="zstd")
    level = models.SmallIntegerField(default=3)
    size_before = models.PositiveIntegerField()
    size_after = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, help_text="of the uploaded (uncompressed) bytes")
    device_details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["modem", "id"]),
            models.Index(fields=["pnm_test_type", "id"]),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_id} {self.filename}"

    @property
    def compression(self) -> dict:
        return {
            "is_compressed": self.is_compressed,
            "codec": self.codec,
            "level": self.level,
            "size_before": self.size_before,
            "size_after": self.size_after,
        }
