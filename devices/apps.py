from django.apps import AppConfig


class DevicesConfig(AppConfig):
    """Field devices and the links to them (SNMP, TFTP, serial), plus their simulators."""

    name = "devices"
