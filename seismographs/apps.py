from django.apps import AppConfig


class SeismographsConfig(AppConfig):
    """Seismographs: the registry, the serial protocol, the layered cache, reads, plots."""

    name = "seismographs"
