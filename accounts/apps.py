from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    """Who may do what: roles (groups), scoped API tokens, the one permission layer."""

    name = "accounts"

    def ready(self) -> None:
        from accounts.roles import seed_after_migrate

        post_migrate.connect(seed_after_migrate, sender=self, dispatch_uid="accounts.roles")
