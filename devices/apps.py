from django.apps import AppConfig


class DevicesConfig(AppConfig):
    """The cable modem registry and the generic links to devices (SNMP, TFTP, PNM)."""

    name = "devices"
