"""Request and response shapes of the captures API (response shapes follow PyPNM's JSON
manifests, so tools written for operation_capture.json / transactions.json keep working).

Modem credentials are write-only: no serializer here ever outputs them (nor takes them:
modems are registered through /api/v1/devices/modems/).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.reverse import reverse

from captures import services
from captures.models import (
    OPERATION_MODES,
    OPERATION_TEST,
    Capture,
    ChannelTally,
    MeasureMode,
    Operation,
    OperationName,
    Transaction,
)
from devices.links import pnm
from devices.links.pnm import format_mac
from devices.models.modems import CableModem

# The TFTP receiver is IPv4-only (tftpy), so a modem uploads from an IPv4 address; the
# receiver accepts an upload only from the address the modem is registered with. For a
# modem managed over IPv6 that IPv4 source is unknown, so its captures could never land.
IPV6_REFUSED = _(
    "IPv6 management addresses cannot run PNM captures: the TFTP receiver is IPv4-only and "
    "accepts uploads only from the modem's registered address; give the modem's IPv4 address"
)


def epoch(value: datetime) -> int:
    return int(value.timestamp())


class ModemConflict(APIException):
    """An inline modem for a MAC already registered: never applied, whoever asks."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "modem_registered"


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "description": "id of a registered cable modem"},
            {"type": "string", "description": "MAC address of a registered cable modem"},
        ]
    }
)
class ModemField(serializers.Field):
    """``modem``: the id or MAC address of a registered modem.

    Operations never register or change a modem (its address and credentials decide where
    workers send SNMP SETs): that is the registry API's job, behind its own permissions. An
    inline object, as earlier versions took, is refused: 409 when its MAC is registered.
    """

    default_error_messages = {
        "unknown": _(
            "no registered modem {value}: register it with POST /api/v1/devices/modems/ "
            "and give its id or MAC address"
        ),
        "ipv6": IPV6_REFUSED,
        "invalid": _("the id or MAC address of a registered modem"),
    }

    def to_internal_value(self, data):
        if isinstance(data, dict):
            self._refuse_inline(data.get("mac_address"))
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid")
        modem = self._registered(data)
        if ipaddress.ip_address(modem.ip_address).version == 6:
            self.fail("ipv6")
        return modem

    def _registered(self, data: int | str) -> CableModem:
        if isinstance(data, int) or (data.isdigit() and len(data) < 12):  # 12: a bare MAC
            modem = CableModem.objects.filter(pk=int(data)).first()
        else:
            try:
                mac = format_mac(data)
            except ValueError:
                self.fail("invalid")
            modem = CableModem.objects.filter(mac_address=mac).first()
        if modem is None:
            self.fail("unknown", value=data)
        return modem

    def _refuse_inline(self, mac: object) -> None:
        try:
            modem = CableModem.objects.filter(mac_address=format_mac(str(mac))).first()
        except ValueError:
            self.fail("invalid")
        if modem is not None:
            raise ModemConflict(
                f"modem {modem.mac_address} is already registered (id {modem.pk}); starting "
                "an operation never changes a registered modem's address or credentials. "
                f'Give "modem": {modem.pk}, and change the modem itself with PATCH '
                f"/api/v1/devices/modems/{modem.pk}/ (needs the modem change permission)."
            )
        self.fail("unknown", value=mac)

    def to_representation(self, value):
        return value.pk


MULTI_NAMES = [(name, label) for name, label in OperationName.choices if name in OPERATION_TEST]


class ParametersField(serializers.DictField):
    """A test's parameters: checked and completed by ``pnm.validate_parameters``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(required=False, allow_empty=True, **kwargs)


def validated_parameters(test: pnm.PnmTest, parameters: dict | None) -> dict[str, dict]:
    """``{test: parameters}``, completed with the test's defaults; 400 on bad input."""
    try:
        return {test.value: pnm.validate_parameters(test, parameters)}
    except pnm.InvalidParameters as exc:
        raise serializers.ValidationError({"parameters": exc.errors}) from None


class StartFields(serializers.Serializer):
    """What every start request names: the modem, the test's parameters, the channels."""

    modem = ModemField()
    parameters = ParametersField(help_text="the test's parameters (see README)")
    channel_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=255),
        required=False,
        allow_empty=True,
        max_length=64,
    )


def multi_plan(attrs: dict) -> dict:
    """``start_operation``'s arguments (all but the modem) for a multi-capture family,
    from checked request fields; 400 on a combination the family refuses."""
    if attrs["duration_s"] < attrs["sample_interval_s"]:
        raise serializers.ValidationError({"duration_s": _("must be at least sample_interval_s")})
    modes = OPERATION_MODES[attrs["test"]]
    mode = attrs.get("measure_mode") or modes[0]
    if mode not in modes:
        raise serializers.ValidationError(
            {"measure_mode": _("one of %(modes)s for this test") % {"modes": list(modes)}}
        )
    test = OPERATION_TEST[attrs["test"]]
    parameters = validated_parameters(test, attrs.get("parameters"))
    if mode == MeasureMode.OFDM_PERFORMANCE_1:
        for extra in (pnm.PnmTest.MODULATION_PROFILE, pnm.PnmTest.FEC_SUMMARY):
            parameters |= validated_parameters(extra, None)
    return {
        "name": attrs["test"],
        "measure_mode": mode,
        "test": test.value,
        "parameters": parameters,
        "duration_s": attrs["duration_s"],
        "sample_interval_s": attrs["sample_interval_s"],
        "channel_ids": attrs.get("channel_ids") or None,
    }


def single_plan(attrs: dict) -> dict:
    """``start_operation``'s arguments (all but the modem) for a single capture of a test."""
    return {
        "name": OperationName.SINGLE_CAPTURE,
        "measure_mode": MeasureMode.SINGLE,
        "test": attrs["test"],
        "parameters": validated_parameters(pnm.PnmTest(attrs["test"]), attrs.get("parameters")),
        "duration_s": 1,
        "sample_interval_s": 1,
        "channel_ids": attrs.get("channel_ids") or None,
    }


class OperationStartSerializer(StartFields):
    test = serializers.ChoiceField(choices=MULTI_NAMES, help_text="the multi-capture family")
    duration_s = serializers.IntegerField(min_value=1, max_value=7 * 86400)
    sample_interval_s = serializers.IntegerField(min_value=1, max_value=86400)
    measure_mode = serializers.CharField(required=False, max_length=32)

    def validate(self, attrs: dict) -> dict:
        return {"modem": attrs["modem"], "plan": multi_plan(attrs)}

    def create(self, validated_data: dict) -> Operation:
        return services.start_operation(modem=validated_data["modem"], **validated_data["plan"])


class CaptureStartSerializer(StartFields):
    """A single capture: one trigger of ``test`` on each of the modem's channels of its
    scope (or the requested ``channel_ids``), as soon as a worker takes it."""

    test = serializers.ChoiceField(choices=[test.value for test in pnm.PnmTest])

    def validate(self, attrs: dict) -> dict:
        return {"modem": attrs["modem"], "plan": single_plan(attrs)}

    def create(self, validated_data: dict) -> Operation:
        return services.start_operation(modem=validated_data["modem"], **validated_data["plan"])


class ChannelTallySerializer(serializers.ModelSerializer):
    """One (file test, channel)'s plan and outcomes (``channel_id`` null: ticks settled
    before the modem's channel list was known, one unit per tick; 0: a test run once per
    modem)."""

    class Meta:
        model = ChannelTally
        fields = [
            "test",
            "channel_id",
            "planned",
            "triggered",
            "collected",
            "skipped",
            "missed",
            "failed",
            "cancelled",
        ]
        read_only_fields = fields


class AccountingFields(serializers.Serializer):
    """The plan and what became of it. ``expected`` (planned captures) = collected +
    skipped + missed + failed + cancelled once the operation is over; ``shortfall`` =
    expected - collected. State ``completed`` means every planned capture is stored;
    ``completed_partial`` that the run ended with a shortfall."""

    planned_ticks = serializers.IntegerField()
    expected = serializers.IntegerField()
    triggered = serializers.IntegerField()
    collected = serializers.IntegerField()
    skipped = serializers.IntegerField()
    missed = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    shortfall = serializers.IntegerField()
    reasons = serializers.SerializerMethodField()
    channels = ChannelTallySerializer(many=True)

    @extend_schema_field(
        {
            "type": "object",
            "description": "outcome -> {reason or error class -> captures}",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
            },
        }
    )
    def get_reasons(self, operation: Operation) -> dict:
        reasons: dict[str, dict[str, int]] = {}
        for row in operation.reasons.all():
            reasons.setdefault(row.outcome, {})[row.reason] = row.count
        return reasons


ACCOUNTING_FIELDS = list(AccountingFields().fields)


class OperationStatusSerializer(AccountingFields):
    """PyPNM's ``operation_status`` block plus our accounting, all from the database."""

    operation_id = serializers.CharField()
    state = serializers.CharField()
    time_remaining = serializers.SerializerMethodField()
    updated = serializers.SerializerMethodField()
    last_error = serializers.CharField()

    def get_time_remaining(self, operation: Operation) -> int:
        return services.time_remaining(operation)

    def get_updated(self, operation: Operation) -> int:
        return epoch(operation.updated)


class OperationSerializer(AccountingFields, serializers.ModelSerializer):
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
            "last_error",
            *ACCOUNTING_FIELDS,
        ]
        read_only_fields = fields

    def get_created(self, operation: Operation) -> int:
        return epoch(operation.created)

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_operation(self, operation: Operation) -> dict:
        return {
            "name": operation.name,
            "measure_mode": operation.measure_mode,
            "test": operation.test,
            "parameters": operation.parameters,
        }

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


class CaptureFileSerializer(serializers.ModelSerializer):
    """One file of a single capture: its state and, once stored, its transaction's links
    (the same endpoints as a multi-capture's transactions)."""

    transaction_id = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Capture
        fields = ["test", "channel_id", "state", "error", "file_name", "transaction_id", "links"]
        read_only_fields = fields

    def get_transaction_id(self, capture: Capture) -> str | None:
        record = getattr(capture, "transaction", None)
        return record.transaction_id if record else None

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_links(self, capture: Capture) -> dict[str, str]:
        record = getattr(capture, "transaction", None)
        if record is None:
            return {}
        request = self.context.get("request")
        names = {
            "transaction": "transaction-detail",
            "download": "transaction-download",
            "parsed": "transaction-parsed",
            "plot": "transaction-plot",
        }
        return {
            key: reverse(name, args=[record.transaction_id], request=request)
            for key, name in names.items()
        }


class SingleCaptureSerializer(AccountingFields, serializers.ModelSerializer):
    """A single capture: its request, state, accounting and files."""

    capture_id = serializers.CharField(source="operation_id")
    capture_group_id = serializers.CharField(source="capture_group.capture_group_id")
    created = serializers.SerializerMethodField()
    files = CaptureFileSerializer(source="captures", many=True)

    class Meta:
        model = Operation
        fields = [
            "capture_id",
            "capture_group_id",
            "created",
            "modem",
            "test",
            "parameters",
            "channel_ids",
            "state",
            "last_error",
            *ACCOUNTING_FIELDS,
            "files",
        ]
        read_only_fields = fields

    def get_created(self, operation: Operation) -> int:
        return epoch(operation.created)
