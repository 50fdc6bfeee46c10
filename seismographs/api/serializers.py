"""Serializers for the seismograph API: the registry, config writes, cached replies."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from seismographs.models import Seismograph, validate_conn_key
from seismographs.protocol.records import MAX_RECORD_TIME_S, SAMPLE_RATES, TEXT_LEN


class SeismographSerializer(serializers.ModelSerializer):
    """A unit. Give ``conn_key`` (``tcp:host:port`` / ``serial:port:baud``) or its parts."""

    host = serializers.CharField(write_only=True, required=False)
    tcp_port = serializers.IntegerField(
        write_only=True, required=False, min_value=1, max_value=65535
    )
    port = serializers.CharField(write_only=True, required=False)
    baud = serializers.IntegerField(write_only=True, required=False, min_value=300)
    last_error = serializers.SerializerMethodField()

    class Meta:
        model = Seismograph
        read_only_fields = [
            "serial_number",
            "created_at",
            "info_fetched_at",
            "config_dirty",
            "event_count",
            "events_checked_at",
            "offline",
            "last_contact_at",
        ]
        fields = [
            "id",
            "conn_key",
            "name",
            "host",
            "tcp_port",
            "port",
            "baud",
            "link_timeout_s",
            "idle_gap_s",
            *read_only_fields,
            "last_error",
        ]
        extra_kwargs = {
            "conn_key": {"required": False},
            "link_timeout_s": {"min_value": 0.05, "max_value": 120},
            "idle_gap_s": {"min_value": 0.01, "max_value": 10},
        }

    def get_last_error(self, obj: Seismograph) -> dict | None:
        if not obj.last_error_kind:
            return None
        return {"kind": obj.last_error_kind, "message": obj.last_error, "at": obj.last_error_at}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        host, tcp_port = attrs.pop("host", None), attrs.pop("tcp_port", None)
        port, baud = attrs.pop("port", None), attrs.pop("baud", None)
        if not attrs.get("conn_key"):
            if host:
                attrs["conn_key"] = f"tcp:{host}:{tcp_port or 12345}"
            elif port:
                attrs["conn_key"] = f"serial:{port}:{baud or 38400}"
            else:
                raise serializers.ValidationError({"conn_key": "give conn_key, host or port"})
            validate_conn_key(attrs["conn_key"])
            if Seismograph.objects.filter(conn_key=attrs["conn_key"]).exists():
                raise serializers.ValidationError({"conn_key": "already registered"})
        return attrs


def _ascii(value: str) -> None:
    if not value.isascii():
        raise serializers.ValidationError("must be ASCII")


class DeviceConfigSerializer(serializers.Serializer):
    """seismo-relay's device-config/v1: every field optional, at least one given."""

    sample_rate = serializers.ChoiceField(choices=SAMPLE_RATES, required=False)
    record_time = serializers.FloatField(required=False, max_value=MAX_RECORD_TIME_S)
    pre_trigger = serializers.FloatField(required=False, min_value=0)
    trigger_level_geo = serializers.FloatField(required=False)
    alarm_level_geo = serializers.FloatField(required=False)
    max_range_geo = serializers.FloatField(required=False)
    project = serializers.CharField(
        required=False, allow_blank=True, max_length=TEXT_LEN, validators=[_ascii]
    )
    client = serializers.CharField(
        required=False, allow_blank=True, max_length=TEXT_LEN, validators=[_ascii]
    )
    user_name = serializers.CharField(
        required=False, allow_blank=True, max_length=TEXT_LEN, validators=[_ascii]
    )
    seis_loc = serializers.CharField(
        required=False, allow_blank=True, max_length=TEXT_LEN, validators=[_ascii]
    )
    notes = serializers.CharField(
        required=False, allow_blank=True, max_length=TEXT_LEN, validators=[_ascii]
    )

    POSITIVE = ("record_time", "trigger_level_geo", "alarm_level_geo", "max_range_geo")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError({"non_field_errors": "give at least one field"})
        errors = {
            name: "must be > 0" for name in self.POSITIVE if name in attrs and attrs[name] <= 0
        }
        current = self.context.get("current") or {}
        merged = {**_api_names(current), **attrs}
        rng = merged.get("max_range_geo")
        for name in ("trigger_level_geo", "alarm_level_geo"):
            if name in attrs and rng is not None and attrs[name] > rng:
                errors.setdefault(name, f"must be <= max_range_geo ({rng:g})")
        pre, rec = merged.get("pre_trigger"), merged.get("record_time")
        if (
            {"pre_trigger", "record_time"} & attrs.keys()
            and pre is not None
            and rec is not None
            and pre >= rec
        ):
            errors.setdefault(
                "pre_trigger" if "pre_trigger" in attrs else "record_time",
                "pre_trigger must be shorter than record_time",
            )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def device_changes(self) -> dict[str, Any]:
        """The validated fields under the link layer's DeviceConfig/ProjectInfo names."""
        renames = {"record_time": "record_time_s", "pre_trigger": "pre_trigger_s"}
        return {renames.get(k, k): v for k, v in self.validated_data.items()}


def _api_names(config: dict[str, Any]) -> dict[str, Any]:
    """A cached DeviceConfig dict under the API's names (for cross-field checks)."""
    flat = {k: v for k, v in config.items() if k != "project"}
    flat.update(config.get("project") or {})
    flat["record_time"] = flat.pop("record_time_s", None)
    flat["pre_trigger"] = flat.pop("pre_trigger_s", None)
    return flat


class CachedReplySerializer(serializers.Serializer):
    """Every read answers with the data and where/when it came from."""

    # DRF moves declared fields off the class, so these names hide nothing at run time.
    data = serializers.JSONField(allow_null=True)  # type: ignore[assignment]
    fetched_at = serializers.DateTimeField(allow_null=True)
    age_s = serializers.FloatField(allow_null=True)
    source = serializers.ChoiceField(choices=["cache", "device"], allow_null=True)  # type: ignore[assignment]
    stale = serializers.BooleanField()
    refreshing = serializers.BooleanField()
    task_id = serializers.CharField(allow_null=True)
    status_url = serializers.URLField(required=False)
    last_error = serializers.JSONField(allow_null=True)
    offline = serializers.BooleanField()


class TaskStatusSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    state = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "running", "succeeded", "failed"])
    progress = serializers.JSONField(allow_null=True)
    result = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
