"""Serializers of the monitoring API: instruments, series queries, ingest results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from rest_framework import serializers

from monitoring.models import Instrument

DEFAULT_RANGE = timedelta(hours=1)
DEFAULT_MAX_POINTS = 2000


class InstrumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Instrument
        fields = ["id", "name", "kind", "channels", "active"]


def parse_time(value: str, field: str) -> datetime:
    """ISO 8601 with a time zone, or integer epoch milliseconds."""
    text = value.strip()
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        # A "+01:00" offset arrives as " 01:00" when the client did not URL-encode it.
        parsed = datetime.fromisoformat(text.replace(" ", "+") if "T" in text else text)
        if parsed.tzinfo is None:
            raise serializers.ValidationError(
                {field: "needs a time zone, e.g. 2026-01-01T00:00:00Z"}
            )
        return parsed.astimezone(UTC)  # (OverflowError at the ends of year 1 and 9999)
    except (ValueError, OverflowError, OSError):
        raise serializers.ValidationError(
            {field: "ISO 8601 with a time zone, or epoch milliseconds"}
        ) from None


class SeriesQuerySerializer(serializers.Serializer):
    start = serializers.CharField(required=False, help_text="ISO 8601 or epoch ms; default end-1h")
    end = serializers.CharField(required=False, help_text="ISO 8601 or epoch ms; default now")
    max_points = serializers.IntegerField(
        required=False,
        default=DEFAULT_MAX_POINTS,
        min_value=4,
        max_value=settings.MONITORING_SERIES_MAX_POINTS,
        help_text="At most this many points per channel (MinMax decimation).",
    )

    def validate(self, attrs: dict) -> dict:
        end = parse_time(attrs["end"], "end") if attrs.get("end") else datetime.now(UTC)
        start = parse_time(attrs["start"], "start") if attrs.get("start") else end - DEFAULT_RANGE
        if start >= end:
            raise serializers.ValidationError({"start": "must be before end"})
        return {**attrs, "start": start, "end": end}


class MultiSeriesQuerySerializer(SeriesQuerySerializer):
    instruments = serializers.CharField(help_text="Comma-separated instrument ids, e.g. 1,2")

    def validate_instruments(self, value: str) -> list[int]:
        try:
            ids = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise serializers.ValidationError("comma-separated integer ids") from None
        if not ids:
            raise serializers.ValidationError("at least one instrument id")
        if len(ids) > 100:
            raise serializers.ValidationError("at most 100 instruments per call")
        return list(dict.fromkeys(ids))


class IngestResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    written = serializers.IntegerField()


class IngestErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    # DRF takes declared fields off the class, so the name hides nothing at run time.
    errors = serializers.ListField(child=serializers.DictField(), required=False)  # type: ignore[assignment]
