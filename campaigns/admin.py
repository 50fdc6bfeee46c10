"""Campaigns in the admin: start one from the modem changelist (an action on the selected
or filtered modems), watch a run's progress, open its worst modems."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Case, F, When
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from rest_framework.exceptions import ValidationError

from campaigns import schedules, services
from campaigns.api.serializers import SINGLE_TESTS, CampaignStartSerializer
from campaigns.models import Campaign, CampaignItem, CampaignRun, ItemState, RunState
from captures.admin import CableModemCaptureAdmin
from captures.analyses import fleet
from captures.api.serializers import MULTI_NAMES
from devices.models import CableModem


class StartCampaignForm(forms.Form):
    """What a campaign needs besides its modems; checked by the API's own serializer."""

    name = forms.CharField(max_length=100)
    test = forms.ChoiceField(
        choices=[(test, test) for test in SINGLE_TESTS] + list(MULTI_NAMES),
        help_text="a test (one capture per modem) or a multi-capture family",
    )
    parameters = forms.JSONField(required=False, initial=dict, help_text="empty: defaults")
    duration_s = forms.IntegerField(required=False, min_value=1, help_text="multi only")
    sample_interval_s = forms.IntegerField(required=False, min_value=1, help_text="multi only")
    max_in_flight = forms.IntegerField(
        initial=100, min_value=1, label="Max in flight", help_text="captures at once, overall"
    )
    max_per_cmts = forms.IntegerField(
        initial=16, min_value=1, label="Max per CMTS", help_text="captures at once per CMTS"
    )
    retries = forms.IntegerField(
        initial=1, min_value=0, max_value=5, help_text="extra attempts per modem"
    )
    mer_threshold_db = forms.FloatField(
        initial=fleet.DEFAULT_MER_THRESHOLD_DB,
        label="RxMER threshold (dB)",
        help_text="RxMER summaries count the subcarriers below it",
    )


def _messages(errors: object, prefix: str = "") -> list[str]:
    """The API's error tree as lines: ``["at most 32 ..."]`` or ``{"modems": [...]}``."""
    if isinstance(errors, dict):
        return [
            line for key, value in errors.items() for line in _messages(value, f"{prefix}{key}: ")
        ]
    if isinstance(errors, list):
        return [line for value in errors for line in _messages(value, prefix)]
    return [f"{prefix}{errors}"]


def _request_body(form: StartCampaignForm, modem_ids: list[int]) -> dict:
    body = {key: value for key, value in form.cleaned_data.items() if value not in (None, "")}
    body["parameters"] = body.get("parameters") or {}
    body["target"] = {"modems": [str(pk) for pk in modem_ids]}
    return body


@admin.action(description="Start a PNM campaign over the selected modems")
def start_campaign(modeladmin, request: HttpRequest, queryset):
    """An intermediate page asks for the test, its parameters and the limits; the campaign
    starts now over the selected modems (all the filtered ones with "select all")."""
    limit = settings.CAMPAIGN_MAX_LISTED_MODEMS
    modem_ids = list(queryset.order_by("pk").values_list("pk", flat=True)[: limit + 1])
    if len(modem_ids) > limit:
        modeladmin.message_user(
            request,
            f"more than {limit} modems selected: start this campaign with the API or "
            "`manage.py campaign run` and a registry filter (cmts, tag, vendor ...)",
            messages.ERROR,
        )
        return None
    form = StartCampaignForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        start = CampaignStartSerializer(data=_request_body(form, modem_ids))
        try:
            start.is_valid(raise_exception=True)
        except ValidationError:
            for field, errors in start.errors.items():
                for message in _messages(errors):
                    if field in form.fields:
                        form.add_error(field, message)
                    else:
                        form.add_error(None, f"{field}: {message}")
        else:
            campaign = start.save()
            url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
            modeladmin.message_user(
                request,
                format_html(
                    'Campaign <a href="{}">{}</a> started over {} modems',
                    url,
                    campaign.name,
                    len(modem_ids),
                ),
                messages.SUCCESS,
            )
            return None
    return TemplateResponse(
        request,
        "admin/campaigns/start_campaign.html",
        {
            **modeladmin.admin_site.each_context(request),
            "form": form,
            "count": len(modem_ids),
            "modems": queryset.order_by("pk")[:20],
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
        },
    )


# The modem registry knows nothing of campaigns: the action is added here.
admin.site.unregister(CableModem)


@admin.register(CableModem)
class CableModemCampaignAdmin(CableModemCaptureAdmin):
    actions = [*CableModemCaptureAdmin.actions, start_campaign]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm("campaigns.add_campaign"):
            actions.pop("start_campaign", None)
        return actions


def _progress_table(run: CampaignRun) -> str:
    counts = services.progress(run)
    rows = [
        ("planned", run.planned),
        ("done", counts.done),
        ("failed", counts.failed),
        ("skipped", counts.skipped),
        ("cancelled", counts.cancelled),
        ("running", counts.by_state[ItemState.RUNNING]),
        ("queued", counts.by_state[ItemState.QUEUED]),
        ("rate", f"{counts.rate():.2f} modems/s"),
        ("ETA", "-" if counts.eta_s() is None else f"{counts.eta_s():.0f} s"),
        *((f"failed: {reason}", n) for reason, n in counts.failed_by_class.most_common()),
        *((f"skipped: {reason}", n) for reason, n in counts.skipped_by_reason.most_common()),
    ]
    body = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
    return format_html("<table>{}</table>", body)


class RunInline(admin.TabularInline):
    model = CampaignRun
    readonly_fields = ("run_link", "state", "planned", "progress_line", "started_at", "finished_at")
    fields = readonly_fields
    extra = 0
    can_delete = False
    show_change_link = False
    ordering = ["-pk"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="run")
    def run_link(self, run: CampaignRun) -> str:
        url = reverse("admin:campaigns_campaignrun_change", args=[run.pk])
        return format_html('<a href="{}">{}</a>', url, run.run_id)

    @admin.display(description="progress")
    def progress_line(self, run: CampaignRun) -> str:
        return services.progress(run).line()


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """The schedule (kind, time, crontab, enabled) and the limits are editable; saving
    updates the beat entry. The target and the test are fixed once created."""

    list_display = ["name", "campaign_id", "test", "schedule", "enabled", "created"]
    search_fields = ["name", "campaign_id"]
    readonly_fields = ["campaign_id", "target", "plan", "created", "updated"]
    fields = [
        "campaign_id", "name", "target", "plan", "max_in_flight", "max_per_cmts", "retries",
        "mer_threshold_db", "schedule", "start_at", "crontab", "enabled", "created", "updated",
    ]  # fmt: skip
    inlines = [RunInline]

    def has_add_permission(self, request) -> bool:
        return False  # from the modem changelist's action (or the API, the CLI)

    def save_model(self, request, obj: Campaign, form, change) -> None:
        super().save_model(request, obj, form, change)
        try:
            schedules.install(obj)
        except ValueError as exc:
            self.message_user(request, f"schedule not installed: {exc}", messages.ERROR)


@admin.register(CampaignRun)
class CampaignRunAdmin(admin.ModelAdmin):
    list_display = ["run_id", "campaign", "state", "planned", "started_at", "finished_at"]
    list_filter = ["state"]
    readonly_fields = (
        "run_id", "campaign", "state", "planned", "progress", "per_cmts", "worst_modems",
        "started_at", "finished_at", "error",
    )  # fmt: skip
    fields = readonly_fields
    actions = ["stop_runs"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        """A running run is stopped first: deleted, its modems' operations would run on
        with no item to settle and its history would be gone."""
        if obj is not None and obj.state == RunState.RUNNING:
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description="Stop the selected runs", permissions=["stop"])
    def stop_runs(self, request, queryset) -> None:
        stopped = sum(services.stop_run(run) for run in queryset)
        self.message_user(request, f"{stopped} run(s) stopped")

    def has_stop_permission(self, request) -> bool:
        return request.user.has_perm("campaigns.change_campaign")

    @admin.display(description="progress")
    def progress(self, run: CampaignRun) -> str:
        return _progress_table(run)

    @admin.display(description="per CMTS")
    def per_cmts(self, run: CampaignRun) -> str:
        table = services.progress_by_cmts(run)
        states = list(ItemState.values)
        head = format_html_join("", "<th>{}</th>", ((state,) for state in states))
        rows = format_html_join(
            "",
            "<tr><th>{}</th>{}</tr>",
            (
                (cmts or "(none)", format_html_join("", "<td>{}</td>", ((c[s],) for s in states)))
                for cmts, c in sorted(table.items())
            ),
        )
        return format_html("<table><tr><th>CMTS</th>{}</tr>{}</table>", head, rows)

    @admin.display(description="worst modems")
    def worst_modems(self, run: CampaignRun) -> str:
        url = reverse("admin:campaigns_campaignitem_changelist")
        items = services.worst(run, 10)
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:captures_operation_change", args=[item.operation_id]),
                    item.mac_address,
                    item.cmts,
                    item.metric,
                    f"{item.value:.2f}",
                )
                for item in items
            ),
        )
        return format_html(
            "<table><tr><th>MAC</th><th>CMTS</th><th>metric</th><th>value</th></tr>{}</table>"
            '<p><a href="{}?run__id__exact={}">every modem of this run</a></p>',
            rows,
            url,
            run.pk,
        )


@admin.register(CampaignItem)
class CampaignItemAdmin(admin.ModelAdmin):
    """One modem of a run, the worst summary first: lowest first for a metric where lower
    is worse (RxMER), highest first where higher is (an FEC uncorrectable ratio)."""

    list_display = ["mac_address", "cmts", "state", "metric", "value", "attempts", "error_class"]
    list_filter = ["state", "cmts"]
    search_fields = ["mac_address"]
    ordering = [
        Case(When(worse="higher", then=-F("value")), default=F("value")).asc(nulls_last=True),
        "pk",
    ]
    readonly_fields = tuple(field.name for field in CampaignItem._meta.fields)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
