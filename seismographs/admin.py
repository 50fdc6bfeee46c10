"""Admin for seismographs: units with their cache age and last error, read-only events and
waveforms (with a plot), and the refresh / clear-cache actions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.permissions import perm
from seismographs import reads as seismo_reads
from seismographs import services, tasks
from seismographs.models import SeismoEvent, Seismograph, SeismoWaveform
from seismographs.plot import waveform_png


def _age(moment) -> str:
    if moment is None:
        return "never"
    return f"{(timezone.now() - moment).total_seconds():.0f} s ago"


@admin.register(Seismograph)
class SeismographAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "conn_key",
        "serial_number",
        "info_age",
        "events_age",
        "event_count",
        "offline",
        "error",
    ]
    list_filter = ["offline", "config_dirty"]
    search_fields = ["conn_key", "name", "serial_number"]
    readonly_fields = [
        "serial_number",
        "info",
        "info_fetched_at",
        "config_dirty",
        "event_count",
        "events_checked_at",
        "events_stale",
        "last_error_kind",
        "last_error",
        "last_error_at",
        "offline",
        "last_contact_at",
    ]
    actions = ["refresh", "clear_cache"]

    @admin.display(description="info cached")
    def info_age(self, obj: Seismograph) -> str:
        return _age(obj.info_fetched_at) + (" (dirty)" if obj.config_dirty else "")

    @admin.display(description="events checked")
    def events_age(self, obj: Seismograph) -> str:
        return _age(obj.events_checked_at)

    @admin.display(description="last error")
    def error(self, obj: Seismograph) -> str:
        return f"{obj.last_error_kind}: {obj.last_error}"[:80] if obj.last_error_kind else ""

    # The actions need the same permissions as the API's forced read and cache clear.
    def has_force_read_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(perm(Seismograph, "force_read"))

    def has_clear_cache_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(perm(Seismograph, "clear_cache"))

    @admin.action(description="Refresh info and events from the unit", permissions=["force_read"])
    def refresh(self, request: HttpRequest, queryset: QuerySet[Seismograph]) -> None:
        for device in queryset:
            seismo_reads.dispatch(device.pk, "info", tasks.refresh_info)
            seismo_reads.dispatch(device.pk, "events", tasks.sync_events)
        self.message_user(request, f"Refresh queued for {queryset.count()} unit(s).")

    @admin.action(
        description="Clear everything cached for these units", permissions=["clear_cache"]
    )
    def clear_cache(self, request: HttpRequest, queryset: QuerySet[Seismograph]) -> None:
        for device in queryset:
            cleared = services.clear_cache(device)
            self.message_user(request, f"{device}: cleared {cleared}", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """What the units reported: viewable, never edited or deleted by hand (the unit's
    "clear cache" action is the way to drop it)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(SeismoEvent)
class SeismoEventAdmin(ReadOnlyAdmin):
    list_display = [
        "device",
        "device_index",
        "waveform_key",
        "timestamp",
        "record_type",
        "peak_vector_sum",
        "fetched_at",
    ]
    list_filter = ["device", "record_type"]
    search_fields = ["waveform_key", "serial_number"]


@admin.register(SeismoWaveform)
class SeismoWaveformAdmin(ReadOnlyAdmin):
    list_display = ["event", "sample_rate", "raw_size", "compressed_size", "fetched_at"]
    exclude = ["data"]
    readonly_fields = ["plot"]

    @admin.display(description="waveform")
    def plot(self, obj: SeismoWaveform) -> str:
        url = reverse("admin:seismographs_seismowaveform_plot", args=[obj.pk])
        return format_html('<img src="{}" alt="waveform plot" style="max-width:100%">', url)

    def get_urls(self):
        plot = self.admin_site.admin_view(self.plot_png)
        return [
            path("<int:pk>/plot.png", plot, name="seismographs_seismowaveform_plot"),
            *super().get_urls(),
        ]

    def plot_png(self, request: HttpRequest, pk: int) -> HttpResponse:
        row = get_object_or_404(SeismoWaveform.objects.select_related("event"), pk=pk)
        if not self.has_view_permission(request, row):
            return HttpResponse(status=403)
        png = waveform_png(
            services.waveform_raw(row),
            row.sample_rate,
            row.meta["pre_trigger_s"],
            row.meta["geo_range"],
            title=str(row.event),
        )
        return HttpResponse(png, content_type="image/png")
