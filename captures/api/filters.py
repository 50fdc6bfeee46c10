"""Filters of the operations list and the transactions feed: modem (id or MAC), test
type, operation, state."""

from __future__ import annotations

import re

import django_filters
from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema_field

from captures.models import Operation, OperationName, OperationState, PnmTestType, Transaction
from devices.links.pnm import MAC_PATTERN, format_mac

# A modem id, or a MAC as aa:bb:cc:dd:ee:ff, aa-bb-..., aabbccddeeff or aabb.ccdd.eeff.
# The schema publishes this pattern and the filter applies the same one.
MODEM_REF = rf"^(?:[0-9]+|{MAC_PATTERN})$"


def validate_modem_ref(value: str) -> None:
    if not re.fullmatch(MODEM_REF, value, re.ASCII):
        raise ValidationError("a modem id or a MAC address")


@extend_schema_field({"type": "string", "pattern": MODEM_REF})
class ModemRefFilter(django_filters.CharFilter):
    """``modem``: id or MAC, one filter for both."""

    def __init__(self, **kwargs) -> None:
        super().__init__(validators=[validate_modem_ref], help_text="modem id or MAC", **kwargs)

    def filter(self, queryset, value: str):
        if not value:
            return queryset
        if value.isdigit():
            return queryset.filter(modem_id=int(value))
        return queryset.filter(**{str(self.field_name): format_mac(value)})


class OperationFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=OperationState.choices)
    name = django_filters.ChoiceFilter(choices=OperationName.choices)
    modem = ModemRefFilter(field_name="modem__mac_address")

    class Meta:
        model = Operation
        fields = ["state", "name", "modem"]


class TransactionFilter(django_filters.FilterSet):
    modem = ModemRefFilter(field_name="mac_address")
    test = django_filters.ChoiceFilter(field_name="pnm_test_type", choices=PnmTestType.choices)
    operation = django_filters.CharFilter(
        field_name="capture__operation__operation_id", help_text="operation_id"
    )

    class Meta:
        model = Transaction
        fields = ["modem", "test", "operation"]
