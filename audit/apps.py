from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Who changed what, when, from where, with which outcome: append-only records."""

    name = "audit"
    verbose_name = "Audit trail"
