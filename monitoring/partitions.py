"""Day partitions of the raw sample table (PostgreSQL only).

Each partition holds one UTC day and is named ``monitoring_sample_pYYYYMMDD``; the name is
the only bookkeeping. The flush creates days ahead and drops expired days; ingest creates a
missing day itself, so a late flush never makes ingest fail.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

PARENT = "monitoring_sample"
PREFIX = f"{PARENT}_p"
# Serialises concurrent creators of the same partition (any constant unique to this use).
_CREATE_LOCK_ID = 0x6D6F6E70  # "monp"


def partition_name(day: date) -> str:
    return f"{PREFIX}{day:%Y%m%d}"


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def ensure_partitions(cursor, days: Iterable[date]) -> list[str]:
    """Create the partitions of ``days`` that do not exist yet; returns the created names."""
    wanted = {partition_name(day): day for day in days}
    if not wanted:
        return []
    missing = _missing(cursor, wanted)
    if not missing:
        return []
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CREATE_LOCK_ID])
    created = []
    for name in _missing(cursor, wanted):
        day = wanted[name]
        lower, upper = day_start(day), day_start(day + timedelta(days=1))
        # DDL takes no bind parameters; every part of this statement is computed here.
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {PARENT} "
            f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
        )
        created.append(name)
    return created


def _missing(cursor, wanted: dict[str, date]) -> list[str]:
    cursor.execute(
        "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL",
        [sorted(wanted)],
    )
    return [row[0] for row in cursor.fetchall()]


def partitions_before(cursor, cutoff: datetime) -> list[str]:
    """Names of the partitions whose whole day ends at or before ``cutoff``."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
        [PARENT],
    )
    names = []
    for (name,) in cursor.fetchall():
        day = datetime.strptime(name.removeprefix(PREFIX), "%Y%m%d").replace(tzinfo=UTC)
        if day + timedelta(days=1) <= cutoff:
            names.append(name)
    return names
