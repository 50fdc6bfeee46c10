"""Helpers of the PNM pipeline tests."""

from __future__ import annotations

from pathlib import Path

from captures.models import CaptureState, Operation, OperationState, Transaction
from simulators.modem import SimulatedModem

# Fast, bounded timings for the worker under test (production defaults are seconds).
WORKER_ENV = {
    "PNM_POLL_INTERVAL_S": "0.1",
    "PNM_SNMP_TIMEOUT_S": "0.3",
    "PNM_SNMP_RETRIES": "0",
    "PNM_MEASURE_DEADLINE_S": "3",
    "PNM_UPLOAD_DEADLINE_S": "3",
    "PNM_MAX_CONSECUTIVE_FAILURES": "2",
}


def assert_accounted(operation: Operation) -> None:
    """Every planned capture has one outcome: planned == collected + skipped + missed +
    failed + cancelled, per channel and for the operation (whose counters are their sums)."""
    operation.refresh_from_db()
    assert operation.expected == operation.settled, operation
    channels = list(operation.channels.all())
    assert sum(row.planned for row in channels) == operation.expected
    for row in channels:
        assert row.planned == row.settled, row
    for outcome in ("collected", "skipped", "missed", "failed", "cancelled", "triggered"):
        assert sum(getattr(row, outcome) for row in channels) == getattr(operation, outcome)
    assert sum(row.count for row in operation.reasons.exclude(outcome="triggered")) == (
        operation.settled - operation.collected
    )


def assert_outage_survived(operation: Operation, modem: SimulatedModem, spool: Path) -> None:
    """After a service went away mid-run: the operation ended truthfully, and every file
    the receiver took from ``modem`` is stored and recorded, none left in ``spool``."""
    assert_accounted(operation)
    assert operation.state in (OperationState.COMPLETED, OperationState.COMPLETED_PARTIAL)
    assert (operation.state == OperationState.COMPLETED) == (operation.shortfall == 0)
    assert not operation.captures.filter(state__in=(CaptureState.PENDING, CaptureState.UPLOADED))
    recorded = set(
        Transaction.objects.filter(capture__operation=operation).values_list(
            "capture__file_name", flat=True
        )
    )
    assert {upload.file_name for upload in modem.uploads if upload.ok} <= recorded
    assert operation.collected == len(recorded)
    assert [path for path in spool.rglob("*") if path.is_file()] == []
