"""The campaigns API: start (now, at a time, recurring), run again, stop, progress, the
worst modems and the per-CMTS distribution of the run's summary metric."""

from __future__ import annotations

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import operate, perm, read
from campaigns import services
from campaigns.api.serializers import (
    CampaignSerializer,
    CampaignStartSerializer,
    RunSerializer,
    WorstItemSerializer,
)
from campaigns.models import Campaign, CampaignRun
from captures.analyses import fleet
from captures.api.analysis_views import CsvRenderer, JsonErrorsMixin, PngRenderer

VIEW = read(perm(Campaign, "view"))
FORMATS = ("json", "csv", "png")


class RunQuery(serializers.Serializer):
    run = serializers.CharField(
        required=False, max_length=16, help_text="a run id (default: the latest run)"
    )


class WorstQuery(RunQuery):
    n = serializers.IntegerField(min_value=1, max_value=1000, default=20)


class DistributionQuery(RunQuery):
    format = serializers.ChoiceField(choices=FORMATS, default="json")
    bins = serializers.IntegerField(min_value=2, max_value=200, default=20)


def _query(serializer: type[serializers.Serializer], request: Request) -> dict:
    query = serializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


class CampaignViewSet(
    JsonErrorsMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Fleet campaigns: one PNM test over many modems, capped per CMTS and overall."""

    queryset = Campaign.objects.order_by("-pk")
    serializer_class = CampaignSerializer
    lookup_field = "campaign_id"
    lookup_value_regex = "[0-9a-f]{16}"
    access = {
        "list": VIEW,
        "retrieve": VIEW,
        "runs": VIEW,
        "worst": VIEW,
        "distribution": VIEW,
        "create": operate(perm(Campaign, "add")),
        "run": operate(perm(Campaign, "change")),
        "stop": operate(perm(Campaign, "change")),
    }

    @extend_schema(request=CampaignStartSerializer, responses={201: CampaignSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        """Create a campaign; ``schedule: now`` (the default) starts its first run."""
        start = CampaignStartSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        campaign = start.save()
        return Response(self._body(campaign), status=status.HTTP_201_CREATED)

    def list(self, request: Request, *args, **kwargs) -> Response:
        """Campaigns, newest first, each with its latest run's progress."""
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        campaigns = list(queryset) if page is None else page
        latest = services.latest_runs(campaigns)
        context = {
            **self.get_serializer_context(),
            "latest_runs": latest,
            "progress": services.progress_of_runs(latest.values()),
        }
        data = CampaignSerializer(campaigns, many=True, context=context).data
        return Response(data) if page is None else self.get_paginated_response(data)

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        """The campaign and its latest run's progress, per CMTS too."""
        return Response(self._body(self.get_object()))

    def _body(self, campaign: Campaign) -> dict:
        context = {"request": self.request, "detail": True}
        return CampaignSerializer(campaign, context=context).data

    @extend_schema(request=None, responses={201: RunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, campaign_id: str) -> Response:
        """Start a run now (409 while one is running)."""
        campaign = self.get_object()
        run = services.start_scheduled_run(campaign)
        if run is None:
            return Response(
                {"detail": "a run of this campaign is still running; stop it first"},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: RunSerializer(many=True)})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, campaign_id: str) -> Response:
        """Cancel its running runs (queued modems cancelled, running operations stopped);
        idempotent. Answers the runs it stopped."""
        campaign = self.get_object()
        stopped = [run for run in campaign.runs.filter(state="running") if services.stop_run(run)]
        for run in stopped:
            run.refresh_from_db()
        return Response(RunSerializer(stopped, many=True).data)

    @extend_schema(responses={200: RunSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def runs(self, request: Request, campaign_id: str) -> Response:
        """Every run, newest first, with its progress."""
        runs = list(self.get_object().runs.select_related("campaign").order_by("-pk")[:100])
        context = {"progress": services.progress_of_runs(runs)}
        return Response(RunSerializer(runs, many=True, context=context).data)

    def _run(self, run_id: str | None) -> CampaignRun:
        campaign = self.get_object()
        runs = campaign.runs.select_related("campaign").order_by("-pk")
        run = (runs.filter(run_id=run_id) if run_id else runs).first()
        if run is None:
            raise NotFound("no such run of this campaign" if run_id else "no run yet")
        return run

    @extend_schema(parameters=[WorstQuery], responses={200: WorstItemSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def worst(self, request: Request, campaign_id: str) -> Response:
        """The modems with the worst summary value first, with links to their captures."""
        query = _query(WorstQuery, request)
        items = services.worst(self._run(query.get("run")), query["n"])
        return Response(WorstItemSerializer(items, many=True, context={"request": request}).data)

    @extend_schema(
        parameters=[DistributionQuery],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY),
        },
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CsvRenderer, PngRenderer])
    def distribution(self, request: Request, campaign_id: str):
        """The run's summary metric per CMTS: stats (JSON), histogram (CSV, PNG)."""
        query = _query(DistributionQuery, request)
        output, bins = query["format"], query["bins"]
        run = self._run(query.get("run"))
        metric, groups = services.values_by_cmts(run)
        if output == "json":
            return Response(
                {
                    "run_id": run.run_id,
                    "metric": metric,
                    "per_cmts": fleet.distribution_stats(groups),
                }
            )
        if not groups:
            raise NotFound("no summarised modem in this run yet")
        name = f"campaign_{campaign_id}_{run.run_id}_{metric}"
        if output == "csv":
            response = StreamingHttpResponse(
                fleet.distribution_csv(groups, metric=metric, bins=bins), content_type="text/csv"
            )
            response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
            return response
        title = f"{run.campaign.name} run {run.run_id}: {metric} per CMTS"
        png = fleet.distribution_png(groups, metric=metric, title=title, bins=bins)
        return HttpResponse(png, content_type="image/png")
