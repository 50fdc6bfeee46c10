"""Create the demo operator account and API token, and print how to use them."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

DEMO_USERNAME = "operator"
DEMO_PASSWORD = "fieldrelay-demo"  # noqa: S105 - a printed, local-only demo account


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
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "fieldrelay demo",
                    f"  operator login : {DEMO_USERNAME} / {DEMO_PASSWORD}",
                    f"  API token      : {token.key}",
                    "  admin          : http://127.0.0.1:8000/admin/",
                    "  API docs       : http://127.0.0.1:8000/api/docs/",
                    "  health         : http://127.0.0.1:8000/health/",
                    "  flower         : http://127.0.0.1:5555/  (same login)",
                    "",
                ]
            )
        )
