"""``manage.py import_pypnm <data-dir>``: the thin command over ``captures.pypnm_import``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from captures.pypnm_import import ImportFailed, import_data_dir


class Command(BaseCommand):
    help = "Import a PyPNM data directory (JSON manifests and pnm/ files); safe to re-run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("data_dir", type=Path)
        parser.add_argument(
            "--level", type=int, default=None, help="zstd level (default: staging's)"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        stream: TextIO | None = None
        if not options["no_progress"]:
            self.stderr.ending = ""  # the bar redraws one line with \r
            stream = cast(TextIO, self.stderr)  # an OutputWrapper is a TextIOBase
        try:
            report = import_data_dir(
                options["data_dir"], level=options["level"], progress_stream=stream
            )
        except ImportFailed as exc:
            raise CommandError(str(exc)) from exc
        for line in report.lines():
            self.stdout.write(line)
