"""``manage.py export_manifests <dir>``: PyPNM's JSON manifests (captures/pypnm_export.py)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from captures.pypnm_export import export


class Command(BaseCommand):
    help = "Write PyPNM's operation/capture-group/transaction JSON manifests to a directory."

    def add_arguments(self, parser) -> None:
        parser.add_argument("dir", type=Path)
        parser.add_argument(
            "--files", action="store_true", help="also copy the stored files into <dir>/pnm/"
        )

    def handle(self, *args, **options) -> None:
        counts = export(options["dir"], with_files=options["files"])
        self.stdout.write(", ".join(f"{v} {k}" for k, v in counts.items()))
