"""Instruments and their samples.

Two sample tables, both keyed by (instrument, time) with no surrogate id:

* ``Sample`` holds every sample of the full-rate window. On PostgreSQL it is range-partitioned
  by day (created by migration 0001 with raw SQL), so retention drops whole days.
* ``Snapshot`` holds one row per instrument and snapshot interval (a minute by default),
  filled in the same transaction as the raw rows: the first sample of the interval (what
  retention keeps for good), the number of raw samples, and each channel's min and max (what
  long-range plots draw).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from monitoring.bpm import BPM_CHANNELS

MAX_CHANNELS = 4
CHANNEL_COLUMNS = [f"c{i}" for i in range(MAX_CHANNELS)]


class Instrument(models.Model):
    """A source of samples: one value per channel per timestamp."""

    class Kind(models.TextChoices):
        BPM = "bpm", "beam position monitor"
        GENERIC = "generic", "generic"

    name = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.BPM)
    channels = models.JSONField(
        default=list, blank=True, help_text="Channel names in column order (BPM: the buttons)."
    )
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("ingest_samples", "Can post samples for instruments")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if self.kind == self.Kind.BPM and not self.channels:
            self.channels = list(BPM_CHANNELS)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if self.kind == self.Kind.BPM and not self.channels:
            self.channels = list(BPM_CHANNELS)
        channels = self.channels
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise ValidationError({"channels": "a list of channel names"})
        if not 1 <= len(channels) <= MAX_CHANNELS:
            raise ValidationError({"channels": f"between 1 and {MAX_CHANNELS} channels"})
        if len(set(channels)) != len(channels):
            raise ValidationError({"channels": "channel names must be unique"})
        bad = [c for c in channels if not c.isidentifier()]
        if bad:
            raise ValidationError({"channels": f"not an identifier: {bad[0]!r}"})
        if self.kind == self.Kind.BPM and channels != BPM_CHANNELS:
            raise ValidationError({"channels": f"a BPM has the buttons {BPM_CHANNELS}"})


class Sample(models.Model):
    """One raw sample. No FK constraint: ingest validates instruments, COPY stays cheap."""

    pk = models.CompositePrimaryKey("instrument_id", "ts")
    instrument = models.ForeignKey(
        Instrument, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+"
    )
    ts = models.DateTimeField()
    c0 = models.FloatField()
    c1 = models.FloatField(null=True)
    c2 = models.FloatField(null=True)
    c3 = models.FloatField(null=True)

    def __str__(self) -> str:
        return f"{self.instrument_id}@{self.ts.isoformat()}"


class Snapshot(models.Model):
    """First sample, count and per-channel min/max of one instrument-interval."""

    pk = models.CompositePrimaryKey("instrument_id", "bucket")
    instrument = models.ForeignKey(
        Instrument, on_delete=models.CASCADE, db_index=False, related_name="+"
    )
    bucket = models.DateTimeField(db_index=True, help_text="Start of the snapshot interval.")
    ts = models.DateTimeField(help_text="Time of the first sample in the interval.")
    c0 = models.FloatField()
    c1 = models.FloatField(null=True)
    c2 = models.FloatField(null=True)
    c3 = models.FloatField(null=True)
    n = models.BigIntegerField(help_text="Raw samples received in the interval.")
    min0 = models.FloatField()
    min1 = models.FloatField(null=True)
    min2 = models.FloatField(null=True)
    min3 = models.FloatField(null=True)
    max0 = models.FloatField()
    max1 = models.FloatField(null=True)
    max2 = models.FloatField(null=True)
    max3 = models.FloatField(null=True)

    def __str__(self) -> str:
        return f"{self.instrument_id}@{self.bucket.isoformat()}"


class RetentionState(models.Model):
    """One row: the watermark of the last flush (raw rows before it are gone)."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID)
    watermark = models.DateTimeField(null=True, blank=True)
    flushed_at = models.DateTimeField(null=True, blank=True)
    last_kept = models.BigIntegerField(default=0)
    last_removed = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"retention watermark {self.watermark}"
