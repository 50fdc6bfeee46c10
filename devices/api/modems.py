"""The cable modem registry API: list/filter, retrieve, create, update, delete.

Credentials (community, v3 auth/priv keys) are write-only: accepted on create/update, never
output. ``secrets_set`` names the ones stored. On update an omitted or empty secret keeps the
stored one (as in the admin); switching SNMP version drops the other version's secrets.
"""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_ipv46_address
from django.db.models import ProtectedError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import operate, perm, read
from config.api import StrictCharField, StrictModelSerializer
from devices.links.pnm import MAC_PATTERN, format_mac
from devices.models.modems import CableModem, SnmpVersion

SECRET_FIELDS = ("community", "auth_key", "priv_key")
V2C_ONLY = ("community",)
V3_ONLY = ("snmp_username", "auth_protocol", "auth_key", "priv_protocol", "priv_key")


def normalized_mac(value: str) -> str:
    try:
        return format_mac(value)
    except ValueError:
        raise DjangoValidationError(_("not a MAC address")) from None


# What the schema promises is what the validators accept, so every schema-valid value passes.
MAC_SCHEMA = {"type": "string", "pattern": f"^(?:{MAC_PATTERN})$"}
IP_SCHEMA = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}


@extend_schema_field(MAC_SCHEMA)
class MacField(StrictCharField):
    """A MAC in any common spelling."""


@extend_schema_field(IP_SCHEMA)
class IpField(serializers.IPAddressField):
    """An IPv4 or IPv6 address."""


@extend_schema_field(MAC_SCHEMA)
class MacFilter(django_filters.CharFilter):
    """``mac``: any common spelling."""


@extend_schema_field(IP_SCHEMA)
class IpFilter(django_filters.CharFilter):
    """``ip``: an exact IPv4 or IPv6 address."""


# SNMPv3 keys: empty (not set) or 8 characters at least (RFC 3414 passphrase minimum).
V3_KEY_PATTERN = r"^(?:|[^\x00]{8,128})$"


@extend_schema_field({"type": "string", "pattern": V3_KEY_PATTERN})
class V3KeyField(StrictCharField):
    """An SNMPv3 key: blank, or long enough for the USM key derivation."""

    def to_internal_value(self, data: object) -> str:
        value = super().to_internal_value(data)
        if value and len(value) < 8:
            raise serializers.ValidationError(_("must be at least 8 characters"))
        return value


def _secret(field: type[StrictCharField] = StrictCharField) -> serializers.CharField:
    return field(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=128,
        trim_whitespace=False,
        style={"input_type": "password"},
    )


class ModemSerializer(StrictModelSerializer):
    mac_address = MacField(max_length=20, help_text="any common MAC spelling")
    ip_address = IpField(protocol="both")
    community = _secret()
    auth_key = _secret(V3KeyField)
    priv_key = _secret(V3KeyField)
    secrets_set = serializers.SerializerMethodField()

    class Meta:
        model = CableModem
        read_only_fields = [
            "vendor",
            "model",
            "hw_rev",
            "sw_rev",
            "bootr",
            "sys_descr",
            "sys_descr_updated",
            "created",
            "updated",
        ]
        fields = [
            "id",
            "mac_address",
            "ip_address",
            "snmp_port",
            "snmp_version",
            "snmp_username",
            "auth_protocol",
            "priv_protocol",
            *SECRET_FIELDS,
            "secrets_set",
            "tag",
            "cmts",
            *read_only_fields,
        ]
        extra_kwargs = {"snmp_port": {"min_value": 1, "max_value": 65535}}

    def get_secrets_set(self, modem: CableModem) -> list[str]:
        return [name for name in SECRET_FIELDS if getattr(modem, name)]

    def validate_mac_address(self, value: str) -> str:
        try:
            mac = normalized_mac(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        others = CableModem.objects.filter(mac_address=mac)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError(_("a modem with this MAC is already registered"))
        return mac

    def validate(self, attrs: dict) -> dict:
        for name in SECRET_FIELDS:  # empty = keep the stored one
            if not attrs.get(name, "") and self.instance is not None:
                attrs.pop(name, None)
        merged = {
            name: attrs.get(name, getattr(self.instance, name, ""))
            for name in ("snmp_version", "snmp_username", *SECRET_FIELDS)
        }
        version = merged["snmp_version"] or SnmpVersion.V2C
        errors = {}
        if version == SnmpVersion.V2C and not merged["community"]:
            errors["community"] = _("required for SNMP v2c")
        if version == SnmpVersion.V3 and not merged["snmp_username"]:
            errors["snmp_username"] = _("required for SNMP v3")
        if errors:
            raise serializers.ValidationError(errors)
        # The other version's fields go: no stale secret is kept that nothing uses.
        for name in V3_ONLY if version == SnmpVersion.V2C else V2C_ONLY:
            attrs[name] = ""
        return attrs


class ModemFilter(django_filters.FilterSet):
    mac = MacFilter(method="filter_mac", validators=[normalized_mac], help_text="MAC, any spelling")
    ip = IpFilter(
        field_name="ip_address", validators=[validate_ipv46_address], help_text="exact address"
    )
    vendor = django_filters.CharFilter(lookup_expr="icontains", help_text="from sysDescr")
    model = django_filters.CharFilter(lookup_expr="icontains", help_text="from sysDescr")
    tag = django_filters.CharFilter()
    cmts = django_filters.CharFilter()
    snmp_version = django_filters.ChoiceFilter(choices=SnmpVersion.choices)

    class Meta:
        model = CableModem
        fields = ["mac", "ip", "vendor", "model", "tag", "cmts", "snmp_version"]

    def filter_mac(self, queryset, _name, value: str):
        return queryset.filter(mac_address=format_mac(value))


class ModemViewSet(viewsets.ModelViewSet):
    """Registered cable modems; start captures on them by id or MAC."""

    queryset = CableModem.objects.order_by("mac_address")
    serializer_class = ModemSerializer
    filterset_class = ModemFilter
    access = {
        "list": read(perm(CableModem, "view")),
        "retrieve": read(perm(CableModem, "view")),
        "create": operate(perm(CableModem, "add")),
        "update": operate(perm(CableModem, "change")),
        "partial_update": operate(perm(CableModem, "change")),
        "destroy": operate(perm(CableModem, "delete")),
    }

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        try:
            return super().destroy(request, *args, **kwargs)
        except ProtectedError:
            return Response(
                {
                    "detail": "this modem has operations: it stays as their record",
                    "code": "modem_in_use",
                },
                status=status.HTTP_409_CONFLICT,
            )
