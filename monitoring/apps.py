from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Instrument time series: ingest, retention, decimated series, dashboard."""

    name = "monitoring"
