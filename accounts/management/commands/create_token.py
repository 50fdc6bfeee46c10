"""``manage.py create_token <user> --name N --scopes read,operate --expires 30d``.

Prints the key once: only its hash is stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import ApiToken, Scope


def parse_expiry(value: str | None) -> datetime | None:
    """``30d`` (days from now) or an ISO 8601 date-time; None: never."""
    if not value:
        return None
    if value.endswith("d") and value[:-1].isdigit():
        return timezone.now() + timedelta(days=int(value[:-1]))
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"--expires: '{value}' is neither <days>d nor an ISO date-time")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def parse_scopes(value: str) -> set[str]:
    scopes = {s.strip() for s in value.split(",") if s.strip()}
    unknown = scopes - set(Scope.values)
    if unknown or not scopes:
        raise CommandError(f"--scopes: give some of {', '.join(Scope.values)}")
    return scopes


class Command(BaseCommand):
    help = "Issue an API token for a user and print its key (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="what uses the token")
        parser.add_argument("--scopes", default="read", help="comma-separated: read,operate,ingest")
        parser.add_argument("--expires", help="<days>d or an ISO 8601 date-time; default never")

    def handle(self, *args, **options) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user '{options['username']}'")
        scopes = parse_scopes(options["scopes"])
        expires = parse_expiry(options["expires"])
        if ApiToken.objects.filter(user=user, name=options["name"]).exists():
            raise CommandError(f"{user} already has a token named '{options['name']}'")
        token, key = ApiToken.objects.issue(user, options["name"], scopes, expires)
        self.stdout.write(key)
        self.stderr.write(
            f"token '{token.name}' of {user}: scopes {', '.join(sorted(token.scopes))}, "
            f"expires {token.expires or 'never'}. The key above is not stored: keep it now."
        )
