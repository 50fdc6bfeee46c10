"""``manage.py flush_retention``: the retention flush, once, in the foreground."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError

from monitoring.api.serializers import parse_time
from monitoring.retention import flush_retention


class Command(BaseCommand):
    help = "Thin samples older than the full-rate window to one snapshot per interval."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--now", help="pretend it is this time (ISO 8601), for backfills")

    def handle(self, *args, now: str | None = None, **options) -> None:
        try:
            when = parse_time(now, "now") if now else None
        except ValidationError as exc:
            detail = exc.detail
            message = detail["now"] if isinstance(detail, dict) else detail  # names the field
            raise CommandError(f"--now: {message}") from None
        result = flush_retention(when)
        if not result.ran:
            self.stdout.write("another flush is running; nothing done")
            return
        self.stdout.write(
            f"watermark {result.watermark_before} -> {result.cutoff.isoformat()}: "
            f"kept {result.kept}, removed {result.removed}, "
            f"dropped partitions: {', '.join(result.dropped) or 'none'}"
        )
