"""Filters of the transactions feed: modem (id or MAC), test type, operation."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError

from captures.models import PnmTestType, Transaction
from devices.links.pnm import format_mac


def validate_modem_ref(value: str) -> None:
    if value.isdigit():
        return
    try:
        format_mac(value)
    except ValueError:
        raise ValidationError("a modem id or a MAC address") from None


class TransactionFilter(django_filters.FilterSet):
    modem = django_filters.CharFilter(
        method="filter_modem", validators=[validate_modem_ref], help_text="modem id or MAC"
    )
    test = django_filters.ChoiceFilter(field_name="pnm_test_type", choices=PnmTestType.choices)
    operation = django_filters.CharFilter(
        field_name="capture__operation__operation_id", help_text="operation_id"
    )

    class Meta:
        model = Transaction
        fields = ["modem", "test", "operation"]

    def filter_modem(self, queryset, _name, value: str):
        if value.isdigit():
            return queryset.filter(modem_id=int(value))
        return queryset.filter(mac_address=format_mac(value))
