"""Admin for PNM operations, captures and transactions: read-only records, a stop action."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from captures import services
from captures.analysis_admin import parsed_panel
from captures.models import (
    Capture,
    CaptureGroup,
    ChannelTally,
    Operation,
    OutcomeReason,
    Transaction,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the pipeline: to look at, never to edit by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.action(description="Stop the selected operations")
def stop_operations(modeladmin, request, queryset) -> None:
    stopped = sum(services.stop_operation(operation) for operation in queryset)
    modeladmin.message_user(request, f"{stopped} operation(s) stopped.", messages.SUCCESS)


class ChannelTallyInline(admin.TabularInline):
    """Each channel's plan and outcomes, read-only."""

    model = ChannelTally
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "channel_id",
        "planned",
        "triggered",
        "collected",
        "skipped",
        "missed",
        "failed",
        "cancelled",
    )

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class OutcomeReasonInline(admin.TabularInline):
    """Why captures were skipped, missed, failed or cancelled."""

    model = OutcomeReason
    extra = 0
    can_delete = False
    fields = readonly_fields = ("outcome", "reason", "count")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    list_display = [
        "operation_id",
        "name",
        "modem",
        "state",
        "planned_ticks",
        "expected",
        "collected",
        "skipped",
        "missed",
        "failed",
        "cancelled",
        "shortfall",
        "created",
        "updated",
    ]
    inlines = [ChannelTallyInline, OutcomeReasonInline]
    list_filter = ["state", "name", "measure_mode", "modem"]
    search_fields = ["operation_id", "capture_group__capture_group_id", "modem__mac_address"]
    list_select_related = ["modem", "capture_group"]
    actions = [stop_operations]
    date_hierarchy = "created"

    @admin.display(description="shortfall")
    def shortfall(self, operation: Operation) -> int:
        return operation.shortfall

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm("captures.change_operation"):
            actions.pop("stop_operations", None)
        return actions


@admin.register(CaptureGroup)
class CaptureGroupAdmin(ReadOnlyAdmin):
    list_display = ["capture_group_id", "created"]
    search_fields = ["capture_group_id", "operation__operation_id"]


@admin.register(Capture)
class CaptureAdmin(ReadOnlyAdmin):
    list_display = ["file_name", "operation", "tick", "channel_id", "state", "triggered_at"]
    list_filter = ["state"]
    search_fields = ["file_name", "operation__operation_id", "operation__modem__mac_address"]
    list_select_related = ["operation"]


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = [
        "transaction_id",
        "timestamp",
        "mac_address",
        "pnm_test_type",
        "channel_id",
        "filename",
        "size_before",
        "size_after",
    ]
    list_filter = ["pnm_test_type", "modem", "channel_id"]
    search_fields = [
        "transaction_id",
        "mac_address",
        "filename",
        "sha256",
        "capture_group__capture_group_id",
        "capture__operation__operation_id",
    ]
    list_select_related = ["modem"]
    date_hierarchy = "timestamp"
    readonly_fields = ["download", "parsed"]

    @admin.display(description="file")
    def download(self, record: Transaction) -> str:
        url = reverse("transaction-download", kwargs={"transaction_id": record.transaction_id})
        return format_html(
            '<a href="{}">decompressed</a> · <a href="{}?raw=1">as stored</a>', url, url
        )

    @admin.display(description="parsed")
    def parsed(self, record: Transaction) -> str:
        return parsed_panel(record)
