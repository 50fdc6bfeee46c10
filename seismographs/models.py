"""Seismographs and the durable half of their device-data cache.

A unit is addressed by its link (``conn_key``); its serial number is learned on first
contact. Event rows are real history: their identity is (device, waveform_key, timestamp),
because units reuse keys after an erase. ``device_index`` is only where the event sits in
the unit's memory right now, so a flush clears that column and never deletes history.
Waveforms hang off an event identity, hence are immutable, and are stored zstd-compressed.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from seismographs.protocol.transport import parse_conn_key


def validate_conn_key(value: str) -> None:
    try:
        parse_conn_key(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class Seismograph(models.Model):
    """One field unit, plus its cached identity/config and the state of its event sync."""

    conn_key = models.CharField(max_length=255, unique=True, validators=[validate_conn_key])
    name = models.CharField(max_length=100, blank=True)
    serial_number = models.CharField(max_length=32, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Link timing overrides (blank = settings): a direct RS-232 line needs no 1.5 s idle
    # gap, a cellular modem does (its 1 s forwarding buffer).
    link_timeout_s = models.FloatField(null=True, blank=True)
    idle_gap_s = models.FloatField(null=True, blank=True)

    # Identity + compliance config as last read; valid until a config write dirties it.
    info = models.JSONField(null=True, blank=True)
    info_fetched_at = models.DateTimeField(null=True, blank=True)
    config_dirty = models.BooleanField(default=False)

    # Event sync: the unit's count at the last probe and when that probe ran.
    event_count = models.PositiveIntegerField(null=True, blank=True)
    events_checked_at = models.DateTimeField(null=True, blank=True)
    events_stale = models.BooleanField(default=False)

    # Failures: the last one (kind + message) and whether the unit is considered offline.
    last_error_kind = models.CharField(max_length=20, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    offline = models.BooleanField(default=False)
    last_contact_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "devices_seismograph"  # created by the devices app; kept, data and all
        ordering = ["id"]
        permissions = [
            ("erase_seismograph", "Can erase a seismograph's event memory"),
            ("operate_seismograph", "Can write config and start/stop monitoring"),
            ("force_read", "Can force a re-read from the unit"),
            ("clear_cache", "Can clear a unit's cache (stored history included)"),
        ]

    def __str__(self) -> str:
        return self.name or self.serial_number or self.conn_key


class SeismoEvent(models.Model):
    """One recorded event's header and peaks, as read from the unit (immutable)."""

    device = models.ForeignKey(Seismograph, on_delete=models.CASCADE, related_name="events")
    serial_number = models.CharField(max_length=32, blank=True)
    waveform_key = models.CharField(max_length=8)
    timestamp = models.DateTimeField()
    device_index = models.PositiveIntegerField(null=True, blank=True)
    record_type = models.CharField(max_length=30, blank=True)
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    peak_vector_sum = models.FloatField(null=True, blank=True)
    header = models.JSONField()
    fetched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "devices_seismoevent"
        ordering = ["device", "device_index", "timestamp"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "waveform_key", "timestamp"], name="seismo_event_identity"
            ),
            models.UniqueConstraint(
                fields=["device", "device_index"],
                condition=models.Q(device_index__isnull=False),
                name="seismo_event_slot",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.device} {self.waveform_key} {self.timestamp:%Y-%m-%d %H:%M:%S}"


class SeismoWaveform(models.Model):
    """The full sample stream of one event, zstd-compressed; written once, complete."""

    event = models.OneToOneField(SeismoEvent, on_delete=models.CASCADE, related_name="waveform")
    data = models.BinaryField()
    encoding = models.CharField(max_length=40)
    raw_size = models.PositiveIntegerField()
    compressed_size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    sample_rate = models.PositiveIntegerField()
    channels = models.JSONField()
    meta = models.JSONField(default=dict)
    fetched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "devices_seismowaveform"

    def __str__(self) -> str:
        return f"waveform of {self.event}"
