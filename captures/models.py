"""PNM operations, capture groups, captures (one expected file each) and transactions.

The three levels of PyPNM's JSON manifests (operation -> capture group -> transaction)
become rows with foreign keys. ``Capture`` is ours: one row per file a trigger asked for,
created before the SNMP trigger, so an upload that never arrives is a visible failure and
a duplicated trigger or staging task hits a unique constraint instead of a second row.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q

from devices.links.pnm import PnmTest


def new_hex_id() -> str:
    """A 16-hex id, the form users know from PyPNM records."""
    return secrets.token_hex(8)


class PnmTestType(models.TextChoices):
    """The PNM test of one file, spelled as PyPNM's ``pnm_test_type`` (a trigger of
    US_PRE_EQUALIZER_COEF yields two files: the coefficients and the last update)."""

    DS_OFDM_RXMER_PER_SUBCAR = "DS_OFDM_RXMER_PER_SUBCAR"
    DS_OFDM_CHAN_EST_COEF = "DS_OFDM_CHAN_EST_COEF"
    DS_CONSTELLATION_DISP = "DS_CONSTELLATION_DISP"
    DS_OFDM_FEC_SUMMARY = "DS_OFDM_FEC_SUMMARY"
    DS_HISTOGRAM = "DS_HISTOGRAM"
    DS_OFDM_MODULATION_PROFILE = "DS_OFDM_MODULATION_PROFILE"
    US_PRE_EQUALIZER_COEF = "US_PRE_EQUALIZER_COEF"
    US_PRE_EQUALIZER_COEF_LAST_UPDATE = "US_PRE_EQUALIZER_COEF_LAST_UPDATE"
    SPECTRUM_ANALYZER = "SPECTRUM_ANALYZER"
    DS_OFDM_SYMBOL_CAPTURE = "DS_OFDM_SYMBOL_CAPTURE"
    SPECTRUM_ANALYZER_SNMP_AMP_DATA = "SPECTRUM_ANALYZER_SNMP_AMP_DATA"  # walked, no header


# The tests a worker can trigger (``devices.links.pnm.PnmTest``): an operation's ``test``.
TRIGGER_TESTS = [(test.value, test.name.replace("_", " ").title()) for test in PnmTest]


class OperationName(models.TextChoices):
    MULTI_RXMER = "multi_rxmer"
    MULTI_DS_CHANNEL_ESTIMATION = "multi_ds_channel_estimation"
    MULTI_CONSTELLATION_DISPLAY = "multi_constellation_display"
    MULTI_FEC_SUMMARY = "multi_fec_summary"
    MULTI_HISTOGRAM = "multi_histogram"
    MULTI_MODULATION_PROFILE = "multi_modulation_profile"
    MULTI_US_PRE_EQUALIZATION = "multi_us_pre_equalization"
    MULTI_SPECTRUM_ANALYZER = "multi_spectrum_analyzer"
    SINGLE_CAPTURE = "single_capture"  # one tick of any test (POST .../captures/)


# The test each multi-capture family triggers on every tick (ofdm_performance_1 adds
# modulation-profile and FEC-summary captures to multi_rxmer's RxMER: ``captures.plans``).
# Symbol capture is single-capture only: a repeated symbol dump answers no question.
OPERATION_TEST: dict[str, PnmTest] = {
    OperationName.MULTI_RXMER: PnmTest.RXMER,
    OperationName.MULTI_DS_CHANNEL_ESTIMATION: PnmTest.CHANNEL_ESTIMATION,
    OperationName.MULTI_CONSTELLATION_DISPLAY: PnmTest.CONSTELLATION,
    OperationName.MULTI_FEC_SUMMARY: PnmTest.FEC_SUMMARY,
    OperationName.MULTI_HISTOGRAM: PnmTest.HISTOGRAM,
    OperationName.MULTI_MODULATION_PROFILE: PnmTest.MODULATION_PROFILE,
    OperationName.MULTI_US_PRE_EQUALIZATION: PnmTest.US_PRE_EQUALIZER,
    OperationName.MULTI_SPECTRUM_ANALYZER: PnmTest.SPECTRUM_ANALYZER,
}


class MeasureMode(models.TextChoices):
    CONTINUOUS = "continuous"  # the family's test every tick
    STANDARD = "standard"  # multi_ds_channel_estimation (PyPNM's name for the same)
    # RxMER every tick, one modulation profile around the middle, FEC summaries at each
    # 600 s mark and at the end (PyPNM's OFDM performance-1)
    OFDM_PERFORMANCE_1 = "ofdm_performance_1"
    SINGLE = "single"  # single_capture: one tick


# Measure modes each family accepts (the first is the default).
OPERATION_MODES: dict[str, tuple[str, ...]] = dict.fromkeys(
    OPERATION_TEST, (MeasureMode.CONTINUOUS,)
) | {
    OperationName.MULTI_RXMER: (MeasureMode.CONTINUOUS, MeasureMode.OFDM_PERFORMANCE_1),
    OperationName.MULTI_DS_CHANNEL_ESTIMATION: (MeasureMode.STANDARD,),
    OperationName.SINGLE_CAPTURE: (MeasureMode.SINGLE,),
}


class OperationState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"  # every planned capture is stored
    COMPLETED_PARTIAL = "completed_partial"  # ran to its end, but some captures are missing
    STOPPED = "stopped"
    CANCELLED = "cancelled"
    FAILED = "failed"


TERMINAL_STATES = (
    OperationState.COMPLETED,
    OperationState.COMPLETED_PARTIAL,
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
    # The test triggered every tick (a multi family's own, or a single capture's; empty
    # for an imported holder of PyPNM records of mixed tests).
    test = models.CharField(max_length=40, choices=TRIGGER_TESTS, blank=True, default="")
    # Per trigger test, its parameters as ``pnm.validate_parameters`` completed them.
    parameters = models.JSONField(default=dict, blank=True)
    modem = models.ForeignKey(
        "devices.CableModem", on_delete=models.PROTECT, related_name="operations"
    )
    capture_group = models.OneToOneField(
        CaptureGroup, on_delete=models.PROTECT, related_name="operation"
    )
    # {"mac_address": ..., "system_description": {HW_REV, VENDOR, BOOTR, SW_REV, MODEL}}
    metadata = models.JSONField(default=dict, blank=True)
    summarise_files = models.BooleanField(
        default=False,
        help_text="staging keeps each file's summary part with its transaction (campaigns)",
    )
    channel_ids = models.JSONField(
        null=True, blank=True, help_text="OFDM channel ids to capture; all when empty"
    )
    duration_s = models.PositiveIntegerField()
    sample_interval_s = models.PositiveIntegerField()
    state = models.CharField(
        max_length=20, choices=OperationState.choices, default=OperationState.PENDING
    )
    # The plan: ticks fixed at start; captures (ticks x channels) fixed when the channel
    # list is first read (until then one per tick). Never rewritten to match the outcome.
    planned_ticks = models.PositiveIntegerField(default=0)
    expected = models.PositiveIntegerField(default=0, help_text="planned captures")
    # Outcomes, each counted (F expressions) when it happens; see ``Outcome``.
    triggered = models.PositiveIntegerField(default=0)
    collected = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    missed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="captures that produced no file")
    cancelled = models.PositiveIntegerField(default=0)
    # Seconds left when last written: at each tick, and frozen at a terminal state.
    time_remaining = models.PositiveIntegerField(default=0)
    # The highest tick a trigger task has claimed; makes a duplicated tick a no-op.
    last_tick = models.PositiveIntegerField(default=0)
    last_tick_at = models.DateTimeField(null=True, blank=True)
    # When the next tick is due (``captures.dispatch``); None once the final one is claimed.
    next_tick_at = models.DateTimeField(null=True, blank=True)
    # Set once the final tick's trigger has finished (succeeded or failed): only then can
    # "no open captures" mean the operation is complete.
    final_tick_done = models.BooleanField(default=False)
    # The tick whose captures are being measured and the token of the modem lease its poll
    # chain holds: when that lease is gone while this is set, the chain died (the sweeper
    # settles the tick). Cleared when the chain ends.
    inflight_tick = models.PositiveIntegerField(null=True, blank=True)
    inflight_lease = models.CharField(max_length=64, blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["state", "ends_at"]),
            models.Index(
                fields=["next_tick_at"],
                condition=Q(state="running"),
                name="operation_due_ticks",
            ),
        ]
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
    def pnm_test(self) -> PnmTest:
        return PnmTest(self.test)

    @property
    def total_ticks(self) -> int:
        """Ticks at 0, interval, 2*interval, ... within the duration, plus the final capture
        (beat fires the first one at the start time); a single capture has one."""
        if self.measure_mode == MeasureMode.SINGLE:
            return 1
        return self.duration_s // self.sample_interval_s + 1

    def tick_due_at(self, number: int) -> datetime:
        """When tick ``number`` (from 1) is due: the first at the start, then one every
        interval, the final one at the end."""
        assert self.started_at is not None
        assert self.ends_at is not None
        if number <= 1:
            return self.started_at
        if number >= self.total_ticks:
            return self.ends_at
        return self.started_at + timedelta(seconds=(number - 1) * self.sample_interval_s)

    def tick_due_by(self, now: datetime) -> int:
        """The latest tick due at ``now`` (0: none yet)."""
        assert self.started_at is not None
        assert self.ends_at is not None
        elapsed = (now - self.started_at).total_seconds()
        if elapsed < 0:
            return 0
        if now >= self.ends_at:
            return self.total_ticks
        return min(int(elapsed // self.sample_interval_s) + 1, max(self.total_ticks - 1, 1))

    @property
    def settled(self) -> int:
        """Planned captures with a final outcome."""
        return sum(getattr(self, outcome) for outcome in SETTLED_OUTCOMES)

    @property
    def shortfall(self) -> int:
        """Planned captures that are not stored (0: every planned file is there)."""
        return max(0, self.expected - self.collected)

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class Outcome(models.TextChoices):
    """What became of a planned (tick, channel); the names of the counter fields."""

    TRIGGERED = "triggered"  # the modem was asked (not a final outcome)
    COLLECTED = "collected"  # stored
    SKIPPED = "skipped"  # not asked: the modem was busy
    MISSED = "missed"  # not asked in time: overload, an expired or lost tick
    FAILED = "failed"  # asked (or tried to), no usable file
    CANCELLED = "cancelled"  # the operation stopped or failed first


# At the end: planned == the sum of these, per channel and per operation.
SETTLED_OUTCOMES = (
    Outcome.COLLECTED,
    Outcome.SKIPPED,
    Outcome.MISSED,
    Outcome.FAILED,
    Outcome.CANCELLED,
)


class ChannelTally(models.Model):
    """The plan and outcome counters of one (file test, channel) of an operation: a "slot".

    ``channel_id`` NULL (``test`` empty) holds the ticks that settled before the modem's
    channel list was known (one unit per tick); its ``planned`` grows with them. Channel 0
    is a test that runs once per modem (histogram, spectrum). Rows are written with the
    operation row locked, so that one row is never made twice.
    """

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="channels")
    test = models.CharField(max_length=40, choices=PnmTestType.choices, blank=True)
    channel_id = models.PositiveIntegerField(null=True, blank=True)
    planned = models.PositiveIntegerField(default=0)
    triggered = models.PositiveIntegerField(default=0)
    collected = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    missed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["test", "channel_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["operation", "test", "channel_id"],
                name="channel_tally_one_per_slot",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.operation_id} {self.test} channel {self.channel_id}"

    @property
    def settled(self) -> int:
        return sum(getattr(self, outcome) for outcome in SETTLED_OUTCOMES)


class OutcomeReason(models.Model):
    """How many planned captures of an operation ended in ``outcome`` for ``reason`` (the
    error class of a failure, "modem busy" for a skip ...)."""

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="reasons")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.CharField(max_length=80)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["outcome", "reason"]
        constraints = [
            models.UniqueConstraint(
                fields=["operation", "outcome", "reason"], name="outcome_reason_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.operation_id} {self.outcome} {self.reason}: {self.count}"


class CaptureState(models.TextChoices):
    PENDING = "pending"  # triggered, upload expected
    UPLOADED = "uploaded"  # complete file in the spool, staging queued
    STORED = "stored"  # transaction recorded
    FAILED = "failed"
    CANCELLED = "cancelled"  # operation stopped before the file came


class Capture(models.Model):
    """One file a trigger asked a modem for: (operation, tick, test, channel) is unique.

    A trigger asks for one file, except upstream pre-equalisation (two: its captures share
    the trigger, ``if_index`` and tick)."""

    # Indexed by the (operation, tick, channel_id) constraint; no separate FK index.
    operation = models.ForeignKey(
        Operation, on_delete=models.CASCADE, related_name="captures", db_index=False
    )
    tick = models.PositiveIntegerField()
    test = models.CharField(max_length=40, choices=PnmTestType.choices)  # of the file
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
        ordering = ["tick", "test", "channel_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["operation", "tick", "test", "channel_id"],
                name="capture_one_per_tick_slot",
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
    # ``captures.analyses.fleet.file_part`` of the file, when its operation asked for it
    summary_part = models.JSONField(null=True, blank=True)

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
