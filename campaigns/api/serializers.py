"""Request and response shapes of the campaigns API. A campaign's plan carries the test's
parameters only; modem credentials never appear (items name modems by id and MAC)."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from campaigns import schedules, services
from campaigns.models import Campaign, CampaignItem, CampaignRun, ScheduleKind
from captures.analyses import fleet
from captures.api.serializers import (
    IPV6_REFUSED,
    MULTI_NAMES,
    ParametersField,
    multi_plan,
    single_plan,
)
from captures.models import OperationName
from devices.links import pnm
from devices.links.pnm import format_mac
from devices.models import CableModem

SINGLE_TESTS = [test.value for test in pnm.PnmTest]


class TargetSerializer(serializers.Serializer):
    """Exactly one of: ``modems`` (ids or MACs), ``filter`` (registry fields), ``all``."""

    modems = serializers.ListField(
        child=serializers.CharField(max_length=17),
        required=False,
        min_length=1,
        max_length=settings.CAMPAIGN_MAX_LISTED_MODEMS,
    )
    filter = serializers.DictField(required=False, help_text=f"keys: {services.TARGET_FILTERS}")
    all = serializers.BooleanField(required=False)

    def validate(self, attrs: dict) -> dict:
        given = [key for key in ("modems", "filter") if key in attrs]
        given += ["all"] if attrs.get("all") else []
        if len(given) != 1:
            raise serializers.ValidationError("give exactly one of modems, filter, all: true")
        if "modems" in attrs:
            return {"modems": self._registered(attrs["modems"])}
        if "filter" in attrs:
            return {"filter": self._filter(attrs["filter"])}
        return {"all": True}

    def _registered(self, given: list[str]) -> list[int]:
        ids, macs, bad = set(), set(), []
        for value in given:
            if value.isdigit() and len(value) < 12:
                ids.add(int(value))
                continue
            try:
                macs.add(format_mac(value))
            except ValueError:
                bad.append(value)
        if bad:
            raise serializers.ValidationError({"modems": [f"not an id or MAC: {bad[:10]}"]})
        rows = CableModem.objects.filter(Q(pk__in=ids) | Q(mac_address__in=macs)).order_by()
        found: dict[int | str, int] = {}
        ipv6 = []
        for pk, mac, address in rows.values_list("pk", "mac_address", "ip_address"):
            found[pk] = found[mac] = pk
            if ipaddress.ip_address(address).version == 6:
                ipv6.append(mac)
        unknown = sorted(str(key) for key in (ids | macs) - set(found))
        if unknown:
            raise serializers.ValidationError(
                {"modems": [f"{len(unknown)} not registered, e.g. {unknown[:10]}"]}
            )
        if ipv6:
            raise serializers.ValidationError(
                {"modems": [f"{IPV6_REFUSED} ({len(ipv6)} listed, e.g. {sorted(ipv6)[:10]})"]}
            )
        return sorted(set(found.values()))

    def _filter(self, given: dict) -> dict:
        if not given:
            raise serializers.ValidationError({"filter": ["empty: give at least one field"]})
        for key, value in given.items():
            values = [value] if isinstance(value, str) else value
            if (
                not isinstance(values, list)
                or not values
                or not all(isinstance(one, str) and one for one in values)
            ):
                raise serializers.ValidationError(
                    {"filter": [f"{key}: a non-empty string or list of strings"]}
                )
        try:  # building the query checks the fields and MAC prefixes; it runs in validate()
            services.target_modems({"filter": given})
        except services.TargetError as exc:
            raise serializers.ValidationError({"filter": [str(exc)]}) from None
        return given


class CampaignStartSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    target = TargetSerializer()
    test = serializers.ChoiceField(
        choices=[*SINGLE_TESTS, *(name for name, _label in MULTI_NAMES)],
        help_text="a PNM test (one capture per modem) or a multi-capture family",
    )
    parameters = ParametersField(help_text="the test's parameters (see README)")
    channel_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=255),
        required=False,
        allow_empty=True,
        max_length=64,
    )
    duration_s = serializers.IntegerField(min_value=1, max_value=7 * 86400, required=False)
    sample_interval_s = serializers.IntegerField(min_value=1, max_value=86400, required=False)
    measure_mode = serializers.CharField(required=False, max_length=32)
    max_in_flight = serializers.IntegerField(min_value=1, default=100)
    max_per_cmts = serializers.IntegerField(min_value=1, default=16)
    retries = serializers.IntegerField(min_value=0, max_value=5, default=1)
    mer_threshold_db = serializers.FloatField(
        min_value=0, max_value=63.5, default=fleet.DEFAULT_MER_THRESHOLD_DB
    )
    schedule = serializers.ChoiceField(choices=ScheduleKind.choices, default=ScheduleKind.NOW)
    start_at = serializers.DateTimeField(required=False)
    crontab = serializers.CharField(required=False, max_length=100)

    def validate_max_in_flight(self, value: int) -> int:
        if value > settings.CAMPAIGN_MAX_IN_FLIGHT:
            raise serializers.ValidationError(
                f"at most {settings.CAMPAIGN_MAX_IN_FLIGHT} (CAMPAIGN_MAX_IN_FLIGHT)"
            )
        return value

    def validate_max_per_cmts(self, value: int) -> int:
        cap = settings.PNM_MAX_IN_FLIGHT_PER_CMTS
        if cap and value > cap:
            raise serializers.ValidationError(
                f"at most {cap}: every CMTS takes no more (PNM_MAX_IN_FLIGHT_PER_CMTS)"
            )
        return value

    def validate(self, attrs: dict) -> dict:
        if attrs["test"] in SINGLE_TESTS:
            plan = single_plan(attrs)
        else:
            for needed in ("duration_s", "sample_interval_s"):
                if needed not in attrs:
                    raise serializers.ValidationError({needed: ["needed for a multi test"]})
            plan = multi_plan(attrs)
        attrs["plan"] = plan
        self._check_schedule(attrs)
        if not services.target_modems(attrs["target"]).exists():
            raise serializers.ValidationError({"target": [services.EMPTY_TARGET]})
        return attrs

    def _check_schedule(self, attrs: dict) -> None:
        kind = attrs["schedule"]
        if kind == ScheduleKind.AT:
            at = attrs.get("start_at")
            if at is None or at <= timezone.now():
                raise serializers.ValidationError({"start_at": ["a time in the future"]})
        elif "start_at" in attrs:
            raise serializers.ValidationError({"start_at": ["only with schedule 'at'"]})
        if kind == ScheduleKind.RECURRING:
            try:
                schedules.parse_crontab(attrs.get("crontab", ""))
            except ValueError as exc:
                raise serializers.ValidationError({"crontab": [str(exc)]}) from None
        elif "crontab" in attrs:
            raise serializers.ValidationError({"crontab": ["only with schedule 'recurring'"]})

    def create(self, validated_data: dict) -> Campaign:
        return services.create_campaign(
            name=validated_data["name"],
            target=validated_data["target"],
            plan=validated_data["plan"],
            max_in_flight=validated_data["max_in_flight"],
            max_per_cmts=validated_data["max_per_cmts"],
            retries=validated_data["retries"],
            mer_threshold_db=validated_data["mer_threshold_db"],
            schedule=validated_data["schedule"],
            start_at=validated_data.get("start_at"),
            crontab=validated_data.get("crontab", ""),
        )


class RunSerializer(serializers.ModelSerializer):
    """A run: its plan (``planned`` modems), what became of them and how fast.
    ``done + failed + skipped + cancelled + queued + running`` = ``planned`` while the
    target is unchanged; ``state`` ``completed`` means every planned modem was captured."""

    campaign_id = serializers.CharField(source="campaign.campaign_id")
    progress = serializers.SerializerMethodField()

    class Meta:
        model = CampaignRun
        fields = [
            "run_id", "campaign_id", "state", "planned", "progress",
            "started_at", "finished_at", "error",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "description": "done, failed, skipped, cancelled, queued, running, "
            "failed_by_class, skipped_by_reason, rate_per_s, eta_s, elapsed_s, "
            "summaries_missing (done, a file unreadable for the summary), per_cmts (detail only)",
        }
    )
    def get_progress(self, run: CampaignRun) -> dict:
        known = self.context.get("progress", {})  # a list's runs, counted together
        counts = known[run.pk] if run.pk in known else services.progress(run)
        eta = counts.eta_s()
        body = {
            "done": counts.done,
            "failed": counts.failed,
            "skipped": counts.skipped,
            "cancelled": counts.cancelled,
            "queued": counts.by_state["queued"],
            "running": counts.by_state["running"],
            "not_reached": max(0, run.planned - counts.settled - counts.open),
            "failed_by_class": dict(counts.failed_by_class),
            "skipped_by_reason": dict(counts.skipped_by_reason),
            "rate_per_s": round(counts.rate(), 3),
            "eta_s": None if eta is None else round(eta, 1),
            "elapsed_s": round(counts.elapsed_s(), 1),
            "summaries_missing": counts.summaries_missing,
        }
        if self.context.get("detail"):
            body["per_cmts"] = services.progress_by_cmts(run)
        return body


class CampaignSerializer(serializers.ModelSerializer):
    test = serializers.CharField()
    latest_run = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "campaign_id", "name", "test", "target", "plan", "max_in_flight", "max_per_cmts",
            "retries", "mer_threshold_db", "schedule", "start_at", "crontab", "enabled",
            "created", "latest_run", "links",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(RunSerializer(allow_null=True))
    def get_latest_run(self, campaign: Campaign) -> dict | None:
        if "latest_runs" in self.context:  # a list: read for the whole page at once
            run = self.context["latest_runs"].get(campaign.pk)
        else:
            run = campaign.runs.order_by("-pk").first()
        return None if run is None else RunSerializer(run, context=self.context).data

    def get_links(self, campaign: Campaign) -> dict[str, str]:
        request = self.context.get("request")
        return {
            name: reverse(f"campaign-{name}", args=[campaign.campaign_id], request=request)
            for name in ("runs", "worst", "distribution")
        }


class WorstItemSerializer(serializers.ModelSerializer):
    """One modem of the ranking: its summary and where its capture is."""

    modem_id = serializers.IntegerField(allow_null=True)
    operation_id = serializers.CharField(source="operation.operation_id", allow_null=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = CampaignItem
        fields = [
            "modem_id", "mac_address", "cmts", "metric", "value", "figures", "attempts",
            "operation_id", "links",
        ]  # fmt: skip
        read_only_fields = fields

    def get_links(self, item: CampaignItem) -> dict[str, str]:
        if item.operation is None:
            return {}
        request = self.context.get("request")
        operation_id = item.operation.operation_id
        links = {"operation": reverse("operation-detail", args=[operation_id], request=request)}
        if item.operation.name == OperationName.SINGLE_CAPTURE:  # its files, with plot links
            links["capture"] = reverse("capture-detail", args=[operation_id], request=request)
        return links
