"""Operation starts are limited per modem: each start sends SNMP SETs to it."""

from __future__ import annotations

from rest_framework.request import Request

from config.api import SharedCacheThrottle
from devices.links.pnm import format_mac
from devices.models.modems import CableModem


def modem_identity(value: object) -> str | None:
    """The modem a start names (id, MAC or an inline spec), as one key per modem."""
    if isinstance(value, dict):
        value = value.get("mac_address")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return f"id:{int(value)}"
    if not isinstance(value, str):
        return None
    try:
        mac = format_mac(value)
    except ValueError:
        return None
    pk = CableModem.objects.filter(mac_address=mac).values_list("pk", flat=True).first()
    return f"id:{pk}" if pk is not None else f"mac:{mac}"


class OperationStartThrottle(SharedCacheThrottle):
    scope = "operation_start"

    def identity(self, request: Request, view: object) -> str | None:
        if getattr(view, "action", None) != "create" or not isinstance(request.data, dict):
            return None
        return modem_identity(request.data.get("modem"))
