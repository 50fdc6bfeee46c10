"""Request and response shapes of the captures API (response shapes follow PyPNM's JSON
manifests, so tools written for operation_capture.json / transactions.json keep working).

Modem credentials are write-only: no serializer here ever outputs them.
"""

from __future__ import annotations

import ipaddress

from django.db import transaction
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from captures import services
from captures.models import OPERATION_MODES, Operation, OperationName, Transaction
from devices.links.pnm import format_mac
from devices.models.modems import CableModem, SnmpAuthProtocol, SnmpPrivProtocol, SnmpVersion

# The TFTP receiver is IPv4-only (tftpy), so a modem uploads from an IPv4 address; the
# receiver accepts an upload only from the address the modem is registered with. For a
# modem managed over IPv6 that IPv4 source is unknown, so its captures could never land.
IPV6_REFUSED = _(
    "IPv6 management addresses cannot run PNM captures: the TFTP receiver is IPv4-only and "
    "accepts uploads only from the modem's registered address; give the modem's IPv4 address"
)


def epoch(value) -> int | None:
    return int(value.timestamp()) if value else None


class SnmpCredentialsSerializer(serializers.Serializer):
    version = serializers.ChoiceField(choices=SnmpVersion.choices, default=SnmpVersion.V2C)
    community = serializers.CharField(required=False, allow_blank=True, max_length=128)
    username = serializers.CharField(required=False, allow_blank=True, max_length=64)
    auth_protocol = serializers.ChoiceField(
        choices=SnmpAuthProtocol.choices, required=False, allow_blank=True
    )
    auth_key = serializers.CharField(required=False, allow_blank=True, max_length=128)
    priv_protocol = serializers.ChoiceField(
        choices=SnmpPrivProtocol.choices, required=False, allow_blank=True
    )
    priv_key = serializers.CharField(required=False, allow_blank=True, max_length=128)

    def validate(self, attrs: dict) -> dict:
        if attrs["version"] == SnmpVersion.V2C and not attrs.get("community"):
            raise serializers.ValidationError({"community": _("required for SNMP v2c")})
        if attrs["version"] == SnmpVersion.V3 and not attrs.get("username"):
            raise serializers.ValidationError({"username": _("required for SNMP v3")})
        for key in ("auth_key", "priv_key"):
            if attrs.get(key) and len(attrs[key]) < 8:
                raise serializers.ValidationError({key: _("must be at least 8 characters")})
        return attrs


class ModemSpecSerializer(serializers.Serializer):
    """A modem given inline: found by MAC (its address and credentials updated) or created."""

    mac_address = serializers.CharField(max_length=20)
    ip_address = serializers.IPAddressField(protocol="both")
    snmp_port = serializers.IntegerField(min_value=1, max_value=65535, default=161)
    snmp = SnmpCredentialsSerializer()

    def validate_mac_address(self, value: str) -> str:
        try:
            return format_mac(value)
        except ValueError:
            raise serializers.ValidationError(_("not a MAC address")) from None

    def validate_ip_address(self, value: str) -> str:
        if ipaddress.ip_address(value).version == 6:  # (IPv4-mapped ones arrive unpacked)
            raise serializers.ValidationError(IPV6_REFUSED)
        return value


class ModemField(serializers.Field):
    """``modem``: the id of a registered modem, or an inline ``ModemSpec``."""

    default_error_messages = {
        "unknown": _("unknown modem {value}"),
        "ipv6": IPV6_REFUSED,
        "invalid": _("an id or an object with mac_address, ip_address and snmp"),
    }

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int) or (isinstance(data, str) and data.isdigit()):
            modem = CableModem.objects.filter(pk=int(data)).first()
            if modem is None:
                self.fail("unknown", value=data)
            if ipaddress.ip_address(modem.ip_address).version == 6:
                self.fail("ipv6")
            return modem
        if isinstance(data, dict):
            spec = ModemSpecSerializer(data=data)
            spec.is_valid(raise_exception=True)
            return spec.validated_data
        self.fail("invalid")

    def to_representation(self, value):
        return value.pk


class OperationStartSerializer(serializers.Serializer):
    modem = ModemField()
    test = serializers.ChoiceField(choices=OperationName.choices)
    duration_s = serializers.IntegerField(min_value=1, max_value=7 * 86400)
    sample_interval_s = serializers.IntegerField(min_value=1, max_value=86400)
    measure_mode = serializers.CharField(required=False, max_length=32)
    channel_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=255),
        required=False,
        allow_empty=True,
        max_length=64,
    )

    def validate(self, attrs: dict) -> dict:
        if attrs["duration_s"] < attrs["sample_interval_s"]:
            raise serializers.ValidationError(
                {"duration_s": _("must be at least sample_interval_s")}
            )
        modes = OPERATION_MODES[attrs["test"]]
        mode = attrs.get("measure_mode") or modes[0]
        if mode not in modes:
            raise serializers.ValidationError(
                {"measure_mode": _("one of %(modes)s for this test") % {"modes": list(modes)}}
            )
        attrs["measure_mode"] = mode
        return attrs

    def create(self, validated_data: dict) -> Operation:
        with transaction.atomic():
            modem = validated_data["modem"]
            if isinstance(modem, dict):
                modem = _upsert_modem(modem)
            return services.start_operation(
                modem=modem,
                name=validated_data["test"],
                measure_mode=validated_data["measure_mode"],
                duration_s=validated_data["duration_s"],
                sample_interval_s=validated_data["sample_interval_s"],
                channel_ids=validated_data.get("channel_ids"),
            )


def _upsert_modem(spec: dict) -> CableModem:
    snmp = spec["snmp"]
    modem, _ = CableModem.objects.update_or_create(
        mac_address=spec["mac_address"],
        defaults={
            "ip_address": spec["ip_address"],
            "snmp_port": spec["snmp_port"],
            "snmp_version": snmp["version"],
            "community": snmp.get("community", ""),
            "snmp_username": snmp.get("username", ""),
            "auth_protocol": snmp.get("auth_protocol", ""),
            "auth_key": snmp.get("auth_key", ""),
            "priv_protocol": snmp.get("priv_protocol", ""),
            "priv_key": snmp.get("priv_key", ""),
        },
    )
    return modem


class OperationStatusSerializer(serializers.Serializer):
    """PyPNM's ``operation_status`` block plus our counters, all from the database."""

    operation_id = serializers.CharField()
    state = serializers.CharField()
    collected = serializers.IntegerField()
    time_remaining = serializers.SerializerMethodField()
    updated = serializers.SerializerMethodField()
    expected = serializers.IntegerField()
    failed = serializers.IntegerField()
    last_error = serializers.CharField()

    def get_time_remaining(self, operation: Operation) -> int:
        return services.time_remaining(operation)

    def get_updated(self, operation: Operation) -> int:
        return epoch(operation.updated)


class OperationSerializer(serializers.ModelSerializer):
    """One record of PyPNM's operation_capture.json, plus our own fields."""

    capture_group_id = serializers.CharField(source="capture_group.capture_group_id")
    created = serializers.SerializerMethodField()
    operation = serializers.SerializerMethodField()
    operation_status = serializers.SerializerMethodField()

    class Meta:
        model = Operation
        fields = [
            "operation_id",
            "capture_group_id",
            "created",
            "operation",
            "metadata",
            "operation_status",
            "modem",
            "duration_s",
            "sample_interval_s",
            "channel_ids",
            "expected",
            "failed",
            "last_error",
        ]
        read_only_fields = fields

    def get_created(self, operation: Operation) -> int:
        return epoch(operation.created)

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_operation(self, operation: Operation) -> dict:
        return {"name": operation.name, "measure_mode": operation.measure_mode}

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_operation_status(self, operation: Operation) -> dict:
        return {
            "state": operation.state,
            "collected": operation.collected,
            "time_remaining": services.time_remaining(operation),
            "updated": epoch(operation.updated),
        }


class TransactionSerializer(serializers.ModelSerializer):
    """One record of PyPNM's transactions.json, plus ids that link it back."""

    timestamp = serializers.SerializerMethodField()
    compression = serializers.SerializerMethodField()
    operation_id = serializers.CharField(source="capture.operation.operation_id")
    capture_group_id = serializers.CharField(source="capture_group.capture_group_id")

    class Meta:
        model = Transaction
        fields = [
            "transaction_id",
            "timestamp",
            "mac_address",
            "pnm_test_type",
            "channel_id",
            "filename",
            "compression",
            "sha256",
            "device_details",
            "operation_id",
            "capture_group_id",
            "modem",
        ]
        read_only_fields = fields

    def get_timestamp(self, record: Transaction) -> int:
        return epoch(record.timestamp)

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_compression(self, record: Transaction) -> dict:
        return record.compression
