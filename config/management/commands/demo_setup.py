"""Create the demo operator account and a fresh API token, and print how to use them.

Only a token's hash is stored, so each run replaces the demo token with a new one to print.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.models import ApiToken, Scope

DEMO_USERNAME = "operator"
DEMO_PASSWORD = "fieldrelay-demo"  # noqa: S105 - a printed, local-only demo account
DEMO_TOKEN_NAME = "demo"  # noqa: S105 - a label, not a secret


class Command(BaseCommand):
    help = "Create (or reuse) the demo operator account and print its API token and URLs."

    def handle(self, *args, **options) -> None:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        ApiToken.objects.filter(user=user, name=DEMO_TOKEN_NAME).delete()
        _, key = ApiToken.objects.issue(user, DEMO_TOKEN_NAME, set(Scope.values))
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "fieldrelay demo",
                    f"  operator login : {DEMO_USERNAME} / {DEMO_PASSWORD}",
                    f"  API token      : {key}  (scopes read, operate, ingest)",
                    "  admin          : http://127.0.0.1:8000/admin/",
                    "  API docs       : http://127.0.0.1:8000/api/docs/",
                    "  health         : http://127.0.0.1:8000/health/",
                    "  flower         : http://127.0.0.1:5555/  (same login)",
                    "",
                ]
            )
        )
