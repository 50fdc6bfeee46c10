from django.apps import AppConfig


class CapturesConfig(AppConfig):
    """DOCSIS PNM multi-capture: operations, capture groups, transactions, analysis."""

    name = "captures"

    def ready(self) -> None:
        from captures import checks  # noqa: F401 - registers the system checks
