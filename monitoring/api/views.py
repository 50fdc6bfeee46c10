"""Monitoring API: instruments, sample ingest, decimated series.

Series responses are gzip-compressed, carry an ETag (304 on a match) and, for ranges that
ended a while ago, are cached server-side and marked cacheable by the browser: such data
only changes when the retention watermark passes it, and the watermark is part of the key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.decorators import method_decorator
from django.views.decorators.gzip import gzip_page
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ingest, perm, read
from config.api import SharedCacheThrottle, hashed
from monitoring import series as series_service
from monitoring.api.parsers import LineProtocolParser, SampleJSONParser
from monitoring.api.serializers import (
    IngestErrorSerializer,
    IngestResultSerializer,
    InstrumentSerializer,
    MultiSeriesQuerySerializer,
    SeriesQuerySerializer,
)
from monitoring.ingest import IngestError, ingest_json, ingest_line_protocol
from monitoring.lineprotocol import PRECISION_NS
from monitoring.models import Instrument

VIEW = read(perm(Instrument, "view"))

SAMPLE = {
    "type": "object",
    "properties": {
        "instrument": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "ts": {"oneOf": [{"type": "string"}, {"type": "number"}]},
        "values": {"oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "object"}]},
    },
    "required": ["instrument", "values"],
}
SAMPLES_BODY = {
    "oneOf": [
        {"type": "array", "items": SAMPLE},
        {
            "type": "object",
            "properties": {"samples": {"type": "array", "items": SAMPLE}},
            "required": ["samples"],
        },
    ]
}
SERIES_RESPONSE = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description='{"instrument": {id, name, kind, channels}, "start", "end", '
    '"resolution": "raw"|"minute", "max_points", "series": {channel: [[t_ms, value], ...]}}',
)


class InstrumentViewSet(viewsets.ReadOnlyModelViewSet):
    """Instruments with their channel names (a short catalogue: not paginated)."""

    queryset = Instrument.objects.all()
    serializer_class = InstrumentSerializer
    pagination_class = None
    filterset_fields = ["kind", "active"]
    access = {"list": VIEW, "retrieve": VIEW}


class SamplePostThrottle(SharedCacheThrottle):
    """Sample posts per token (per user for session logins)."""

    scope = "sample_post"

    def identity(self, request: Request, view: object) -> str | None:
        token = getattr(request.auth, "pk", None)
        return f"token:{hashed(token)}" if token is not None else f"user:{request.user.pk}"


class SampleIngestView(APIView):
    """Accept a batch of samples: JSON, or InfluxDB line protocol as text/plain."""

    parser_classes = [SampleJSONParser, LineProtocolParser]
    access = {"post": ingest(perm(Instrument, "ingest_samples"))}
    throttle_classes = [SamplePostThrottle]
    audit_exempt = True  # data, not control; the stored samples are their own record

    @extend_schema(
        request={"application/json": SAMPLES_BODY, "text/plain": OpenApiTypes.STR},
        parameters=[
            OpenApiParameter(
                "precision", str, enum=sorted(PRECISION_NS), description="line protocol only"
            )
        ],
        responses={201: IngestResultSerializer, 400: IngestErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        data = request.data
        precision = request.query_params.get("precision", "ns")
        if precision not in PRECISION_NS:
            return _bad("precision", f"one of {', '.join(sorted(PRECISION_NS))}")
        try:
            if isinstance(data, str):
                result = ingest_line_protocol(data, precision=precision)
            else:
                samples = data.get("samples") if isinstance(data, dict) else data
                if not isinstance(samples, list):
                    return _bad("samples", "a list of samples, or {'samples': [...]}")
                result = ingest_json(samples)
        except IngestError as exc:
            errors = [{"where": p.where, "message": p.message} for p in exc.problems]
            return Response({"detail": str(exc), "errors": errors}, status=400)
        return Response(
            {"received": result.received, "written": result.written},
            status=status.HTTP_201_CREATED,
        )


def _bad(field: str, message: str) -> Response:
    return Response(
        {"detail": f"{field}: {message}", "errors": [{"where": field, "message": message}]},
        status=400,
    )


@method_decorator(gzip_page, name="dispatch")
class InstrumentSeriesView(APIView):
    """One instrument's channels over [start, end), decimated to max_points per channel."""

    access = {"get": VIEW}

    @extend_schema(parameters=[SeriesQuerySerializer], responses={200: SERIES_RESPONSE})
    def get(self, request: Request, pk: int) -> HttpResponse:
        instrument = get_object_or_404(Instrument, pk=pk)
        query = SeriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return _series_response(request, [instrument], query.validated_data, multi=False)


@method_decorator(gzip_page, name="dispatch")
class MultiSeriesView(APIView):
    """Several instruments in one call: ``{"results": [<one instrument's series>, ...]}``."""

    access = {"get": VIEW}

    @extend_schema(
        parameters=[MultiSeriesQuerySerializer],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description='{"results": [...]}')},
    )
    def get(self, request: Request) -> HttpResponse:
        query = MultiSeriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        ids = query.validated_data["instruments"]
        found = Instrument.objects.in_bulk(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            return _bad("instruments", f"unknown instrument ids: {missing}")
        instruments = [found[i] for i in ids]
        return _series_response(request, instruments, query.validated_data, multi=True)


def _series_response(
    request: HttpRequest, instruments: list[Instrument], query: dict, *, multi: bool
) -> HttpResponse:
    start, end, max_points = query["start"], query["end"], query["max_points"]
    flushed_until = series_service.watermark()

    def build() -> bytes:
        results = [
            series_service.series(i, start, end, max_points, flushed_until) for i in instruments
        ]
        payload = {"results": results} if multi else results[0]
        return json.dumps(payload, separators=(",", ":")).encode()

    settle = timedelta(seconds=2 * settings.MONITORING_SNAPSHOT_INTERVAL_S)
    closed = end <= datetime.now(UTC) - settle
    key = None
    if closed and settings.MONITORING_SERIES_CACHE_S:
        ids = ",".join(str(i.pk) for i in instruments)
        mark = flushed_until.isoformat() if flushed_until else "-"
        spec = f"{int(multi)}:{ids}:{start.isoformat()}:{end.isoformat()}:{max_points}:{mark}"
        key = "monitoring:series:" + hashlib.blake2b(spec.encode(), digest_size=16).hexdigest()
    body = _cached(key, build)
    etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    if etag in request.headers.get("If-None-Match", ""):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    if closed:
        response["Cache-Control"] = f"private, max-age={settings.MONITORING_SERIES_CACHE_S}"
    else:
        response["Cache-Control"] = "private, no-cache"
    return response


def _cached(key: str | None, build: Callable[[], bytes]) -> bytes:
    if key is None:
        return build()
    body = cache.get(key)
    if body is None:
        body = build()
        cache.set(key, body, timeout=settings.MONITORING_SERIES_CACHE_S)
    return body
