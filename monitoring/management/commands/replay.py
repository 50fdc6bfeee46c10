"""``manage.py replay <dump>``: feed a listener dump back through the listener's own path."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.ingester import replay
from monitoring.ingest import forward_item


class Command(BaseCommand):
    help = "Replay a stream-listener dump (JSONL) into the database, as the listener would."

    def add_arguments(self, parser) -> None:
        parser.add_argument("dump", type=Path)

    def handle(self, *args, dump: Path, **options) -> None:
        if not dump.is_file():
            raise CommandError(f"no such dump file: {dump}")
        count = replay(dump, forward_item)
        self.stdout.write(f"replayed {count} batches from {dump}")
