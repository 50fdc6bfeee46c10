"""Admin for PNM operations, captures and transactions: read-only records, a stop action,
and on the modem changelist an action that starts a single capture."""

from __future__ import annotations

import ipaddress

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from captures import services
from captures.analysis_admin import parsed_panel
from captures.models import (
    Capture,
    CaptureGroup,
    ChannelTally,
    MeasureMode,
    Operation,
    OperationName,
    OutcomeReason,
    Transaction,
)
from devices.admin.modems import CableModemAdmin
from devices.links import pnm
from devices.models import CableModem


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
    """Each (file test, channel)'s plan and outcomes, read-only."""

    model = ChannelTally
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "test",
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
        "test",
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
    list_filter = ["state", "name", "test", "measure_mode", "modem"]
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
    list_display = [
        "file_name",
        "operation",
        "tick",
        "test",
        "channel_id",
        "state",
        "triggered_at",
    ]
    list_filter = ["state", "test"]
    search_fields = ["file_name", "operation__operation_id", "operation__modem__mac_address"]
    list_select_related = ["operation"]
    readonly_fields = ["parsed"]

    @admin.display(description="parsed file and plot")
    def parsed(self, capture: Capture) -> str:
        record = Transaction.objects.filter(capture=capture).first()
        if record is None:
            return format_html("<p>no file stored ({})</p>", capture.state)
        return parsed_panel(record)


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


class StartCaptureForm(forms.Form):
    """What a single capture needs besides its modems."""

    test = forms.ChoiceField(choices=[(test.value, test.name) for test in pnm.PnmTest])
    parameters = forms.JSONField(
        required=False, initial=dict, help_text="a JSON object; empty for the defaults"
    )
    channel_ids = forms.CharField(
        required=False, help_text="comma-separated channel ids; empty for every channel"
    )

    def clean_channel_ids(self) -> list[int]:
        text = self.cleaned_data["channel_ids"].strip()
        try:
            ids = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError("channel ids are numbers, e.g. 193, 194") from None
        if any(not 0 <= channel_id <= 255 for channel_id in ids):
            raise forms.ValidationError("a channel id is 0 to 255")
        return ids

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        if "test" in cleaned:
            test = pnm.PnmTest(cleaned["test"])
            try:
                parameters = pnm.validate_parameters(test, cleaned.get("parameters") or None)
            except pnm.InvalidParameters as exc:
                self.add_error("parameters", [f"{k}: {why}" for k, why in exc.errors.items()])
            else:
                cleaned["parameters"] = {test.value: parameters}
        return cleaned


@admin.action(description="Start a single PNM capture on the selected modems")
def start_single_capture(modeladmin, request, queryset):
    """An intermediate page asks for the test and its parameters, then one single capture
    per modem starts (IPv6-managed modems are refused, as by the API)."""
    form = StartCaptureForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        started = []
        for modem in queryset:
            if ipaddress.ip_address(modem.ip_address).version == 6:
                modeladmin.message_user(
                    request, f"{modem.mac_address}: IPv6-managed, not started", messages.ERROR
                )
                continue
            operation = services.start_operation(
                modem=modem,
                name=OperationName.SINGLE_CAPTURE,
                measure_mode=MeasureMode.SINGLE,
                test=form.cleaned_data["test"],
                parameters=form.cleaned_data["parameters"],
                duration_s=1,
                sample_interval_s=1,
                channel_ids=form.cleaned_data["channel_ids"] or None,
            )
            started.append(operation)
        for operation in started:
            url = reverse("admin:captures_operation_change", args=[operation.pk])
            modeladmin.message_user(
                request,
                format_html(
                    '{} on {}: <a href="{}">operation {}</a>',
                    operation.test,
                    operation.modem.mac_address,
                    url,
                    operation.operation_id,
                ),
                messages.SUCCESS,
            )
        return None
    return TemplateResponse(
        request,
        "admin/captures/start_capture.html",
        {**modeladmin.admin_site.each_context(request), "form": form, "modems": list(queryset)},
    )


# The modem registry (devices) knows nothing of captures: the action is added here.
admin.site.unregister(CableModem)


@admin.register(CableModem)
class CableModemCaptureAdmin(CableModemAdmin):
    actions = [start_single_capture]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm("captures.add_operation"):
            actions.pop("start_single_capture", None)
        return actions
