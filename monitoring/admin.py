"""Admin: instruments (editable) and the retention state (read-only).

Samples and snapshots are not admin models: there are billions of them, and the API and
dashboard are the way to look at them.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from monitoring.models import Instrument, RetentionState


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "channels", "active", "created"]
    list_filter = ["kind", "active"]
    search_fields = ["name"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        """Stored samples are positional (c0..c3 in channel order): once an instrument
        exists its kind and channels stay, or old samples would read as other channels."""
        return ["kind", "channels"] if obj is not None else []


@admin.register(RetentionState)
class RetentionStateAdmin(admin.ModelAdmin):
    list_display = ("watermark", "flushed_at", "last_kept", "last_removed")
    readonly_fields = list_display

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
