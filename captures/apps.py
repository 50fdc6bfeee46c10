from django.apps import AppConfig


class CapturesConfig(AppConfig):
    """DOCSIS PNM multi-capture: operations, capture groups, transactions, analysis."""

    name = "captures"
