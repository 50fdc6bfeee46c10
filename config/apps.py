from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Project-level models (worker round trips) and commands live in the config app."""

    name = "config"
    verbose_name = "Platform"

    def ready(self) -> None:
        from config import api  # noqa: F401 - registers the throttle rate check
