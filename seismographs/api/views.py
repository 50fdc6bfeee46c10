"""Seismograph API: the registry, cached reads, commands, cache stats, task status.

Reads go through ``seismographs.reads.serve`` (fresh → cache, stale → cache + one
refresh, nothing → bounded wait then 202); the views only parse input and shape output.
"""

from __future__ import annotations

import json
from typing import Any

from celery import Task
from celery.result import AsyncResult
from django.http import Http404, HttpResponse
from django_celery_results.models import TaskResult
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from accounts.permissions import forced, operate, perm, read
from config.api import SharedCacheThrottle
from seismographs import cache as seismo_cache
from seismographs import reads as seismo_reads
from seismographs import services, tasks
from seismographs.api.serializers import (
    CachedReplySerializer,
    DeviceConfigSerializer,
    SeismographSerializer,
    TaskStatusSerializer,
)
from seismographs.models import Seismograph, SeismoWaveform
from seismographs.plot import waveform_json
from seismographs.reads import Reply
from seismographs.stats import cache_stats

FORCE = OpenApiParameter("force", bool, description="Bypass freshness (still one session).")
REPLIES = {
    200: CachedReplySerializer,
    202: CachedReplySerializer,
    404: OpenApiResponse(description="No such device or event"),
    502: CachedReplySerializer,
    503: CachedReplySerializer,
    504: CachedReplySerializer,
}
DEFAULT_MAX_POINTS = 4000

VIEW = perm(Seismograph, "view")
# A read that may reach the unit: with ?force=true it needs the force_read permission.
DEVICE_READ = read(VIEW, forced=operate(VIEW, perm(Seismograph, "force_read")))


class _MaxPoints(serializers.Serializer):
    max_points = serializers.IntegerField(
        min_value=16,
        max_value=200_000,
        default=DEFAULT_MAX_POINTS,
        help_text="Decimate to this many points.",
    )


class ForcedReadThrottle(SharedCacheThrottle):
    """``?force=true`` reads dial the unit: limited per unit, whoever asks."""

    scope = "seismo_force"

    def identity(self, request: Request, view: object) -> str | None:
        if request.method != "GET" or not forced(request):
            return None
        return str(getattr(view, "kwargs", {}).get("pk"))


def _respond(request: Request, reply: Reply, data: object = None) -> Response:
    body = reply.body()
    if data is not None:
        body["data"] = data
    if reply.task_id:
        body["status_url"] = reverse("seismo-task", args=[reply.task_id], request=request)
    response = Response(body, status=reply.status)
    if reply.status == 202:
        response["Location"] = body["status_url"]
        response["Retry-After"] = "1"
    if reply.status == 200 and body["age_s"] is not None:
        response["Age"] = str(int(body["age_s"]))
    return response


def _etag(row: SeismoWaveform, variant: str = "") -> str:
    return f'"{row.sha256[:32]}{variant}"'


def _plot_json(row: SeismoWaveform, max_points: int) -> bytes:
    raw = services.waveform_raw(row)
    plot = waveform_json(
        raw, row.sample_rate, row.meta["pre_trigger_s"], row.meta["geo_range"], max_points
    )
    return json.dumps(plot, separators=(",", ":")).encode()


class SeismographViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Seismographs, addressed by their link; data read through the layered cache."""

    queryset = Seismograph.objects.all()
    serializer_class = SeismographSerializer
    # Deleting a unit or clearing its cache drops stored history (events erased from the
    # unit exist nowhere else): operators, like erase.
    access = {
        "list": read(VIEW),
        "retrieve": read(VIEW),
        "create": operate(perm(Seismograph, "add")),
        "destroy": operate(perm(Seismograph, "delete")),
        "info": DEVICE_READ,
        "events": DEVICE_READ,
        "event": DEVICE_READ,
        "waveform": DEVICE_READ,
        "waveform_raw": DEVICE_READ,
        "monitor": DEVICE_READ,
        "config": operate(perm(Seismograph, "operate_seismograph")),
        "monitor_start": operate(perm(Seismograph, "operate_seismograph")),
        "monitor_stop": operate(perm(Seismograph, "operate_seismograph")),
        "erase": operate(perm(Seismograph, "erase_seismograph")),
        "cache": read(VIEW),
        "clear_cache": operate(perm(Seismograph, "clear_cache")),
        "cache_stats": read(VIEW),
    }
    throttle_classes = [ForcedReadThrottle]

    def _serve(self, request: Request, resource: seismo_reads.Resource) -> Response:
        reply = seismo_reads.serve(self.get_object(), resource, forced(request))
        return _respond(request, reply)

    def _command(self, request: Request, name: str, task: Task, **kwargs: object) -> Response:
        reply = seismo_reads.run_command(self.get_object(), name, task, **kwargs)
        return _respond(request, reply)

    def perform_create(self, serializer: serializers.BaseSerializer[Seismograph]) -> None:
        # A new unit starts with no live state, even if Redis outlived the database.
        seismo_cache.clear_device(serializer.save().pk)

    @extend_schema(parameters=[FORCE], responses=REPLIES)
    @action(detail=True, methods=["get"])
    def info(self, request: Request, pk: str) -> Response:
        """Identity and compliance config; cached until a config write dirties it."""
        return self._serve(request, seismo_reads.info_resource())

    @extend_schema(parameters=[FORCE], responses=REPLIES)
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str) -> Response:
        """Event headers; a count probe then only new indices when stale."""
        return self._serve(request, seismo_reads.events_resource())

    @extend_schema(parameters=[FORCE], responses=REPLIES, operation_id="seismograph_event")
    @action(detail=True, methods=["get"], url_path=r"events/(?P<index>\d+)")
    def event(self, request: Request, pk: str, index: str) -> Response:
        """One event header by its index in the unit's memory."""
        return self._serve(request, seismo_reads.event_resource(int(index)))

    def _waveform(self, request: Request, index: int) -> Reply:
        force = forced(request)
        resource = seismo_reads.waveform_resource(index, force)
        return seismo_reads.serve(self.get_object(), resource, force)

    @extend_schema(parameters=[FORCE, _MaxPoints], responses=REPLIES)
    @action(detail=True, methods=["get"], url_path=r"events/(?P<index>\d+)/waveform")
    def waveform(self, request: Request, pk: str, index: str) -> Response | HttpResponse:
        """Samples in physical units with a time axis, min/max-preserving decimation."""
        params = _MaxPoints(data=request.query_params)
        params.is_valid(raise_exception=True)
        reply = self._waveform(request, int(index))
        if reply.status != 200:
            return _respond(request, reply)
        row: SeismoWaveform = reply.data
        max_points = params.validated_data["max_points"]
        etag = _etag(row, f"-{max_points}")
        if request.headers.get("If-None-Match") == etag:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        plot = seismo_cache.rendered_plot(
            row.sha256, max_points, lambda: _plot_json(row, max_points)
        )
        # The plot is spliced in as pre-encoded JSON (encoding 5,000 floats per hit was the
        # costliest part of a hit); the envelope and the event's current index are not cached.
        event = json.dumps(seismo_reads.event_json(row.event, has_waveform=True))
        envelope = reply.body()
        del envelope["data"]
        content = b"".join(
            [
                b'{"data":',
                plot[:-1],
                b',"event":',
                event.encode(),
                b"},",
                json.dumps(envelope)[1:].encode(),
            ]
        )
        return HttpResponse(
            content,
            content_type="application/json",
            headers={
                "ETag": etag,
                "Cache-Control": "private, max-age=31536000, immutable",
                "Age": str(int(envelope["age_s"] or 0)),
            },
        )

    @extend_schema(
        parameters=[FORCE],
        responses={200: OpenApiTypes.BINARY, 202: CachedReplySerializer, 404: None},
    )
    @action(detail=True, methods=["get"], url_path=r"events/(?P<index>\d+)/waveform/raw")
    def waveform_raw(self, request: Request, pk: str, index: str) -> Response | HttpResponse:
        """The body as the unit streamed it (int16 BE sample sets, 4 channels interleaved)."""
        reply = self._waveform(request, int(index))
        if reply.status != 200:
            return _respond(request, reply)
        row: SeismoWaveform = reply.data
        etag = _etag(row)
        if request.headers.get("If-None-Match") == etag:
            return HttpResponse(status=304, headers={"ETag": etag})
        event = row.event
        stamp = f"{event.timestamp:%Y%m%dT%H%M%S}"
        name = f"{event.serial_number or 'unit'}_{event.waveform_key}_{stamp}.i16be"
        body = reply.body()
        return HttpResponse(
            services.waveform_raw(row),
            content_type="application/octet-stream",
            headers={
                "ETag": etag,
                "Cache-Control": "private, max-age=31536000, immutable",
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Sample-Rate": str(row.sample_rate),
                "X-Channels": ",".join(row.channels),
                "X-Fetched-At": body["fetched_at"],
                "X-Source": body["source"],
                "X-Stale": "true" if body["stale"] else "false",
                "X-Last-Error": (body["last_error"] or {}).get("kind", ""),
                "Age": str(int(body["age_s"] or 0)),
            },
        )

    @extend_schema(request=DeviceConfigSerializer, responses=REPLIES | {400: None})
    @action(detail=True, methods=["post"])
    def config(self, request: Request, pk: str) -> Response:
        """Write compliance config; info (and events) become dirty on success."""
        device = self.get_object()
        current = (device.info or {}).get("config")
        config = DeviceConfigSerializer(data=request.data, context={"current": current})
        config.is_valid(raise_exception=True)
        reply = seismo_reads.run_command(
            device, "config", tasks.write_config, changes=config.device_changes()
        )
        return _respond(request, reply)

    @extend_schema(parameters=[FORCE], responses=REPLIES)
    @action(detail=True, methods=["get"])
    def monitor(self, request: Request, pk: str) -> Response:
        """Monitoring status (30 s cache), with a pending start/stop the unit has not confirmed."""
        return self._serve(request, seismo_reads.monitor_resource())

    @extend_schema(request=None, responses=REPLIES)
    @action(detail=True, methods=["post"], url_path="monitor/start")
    def monitor_start(self, request: Request, pk: str) -> Response:
        return self._command(request, "monitoring", tasks.set_monitoring, start=True)

    @extend_schema(request=None, responses=REPLIES)
    @action(detail=True, methods=["post"], url_path="monitor/stop")
    def monitor_stop(self, request: Request, pk: str) -> Response:
        return self._command(request, "monitoring", tasks.set_monitoring, start=False)

    @extend_schema(request=None, responses=REPLIES | {403: None})
    @action(detail=True, methods=["post"])
    def erase(self, request: Request, pk: str) -> Response:
        """Erase the unit's event memory (operators only). Stored events stay as history."""
        return self._command(request, "erase", tasks.erase_device)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def cache(self, request: Request, pk: str) -> Response:
        """This unit's cache stats."""
        return Response(cache_stats(self.get_object()))

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 403: None})
    @cache.mapping.delete
    def clear_cache(self, request: Request, pk: str) -> Response:
        """Drop everything cached for this unit, stored history included (operators)."""
        return Response({"cleared": services.clear_cache(self.get_object())})

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=False, methods=["get"], url_path="cache-stats")
    def cache_stats(self, request: Request) -> Response:
        """Rows, bytes, hits and misses per cache layer, over all units."""
        return Response(cache_stats())


class TaskStatusView(APIView):
    """Poll a device task started by a 202 answer."""

    access = {"get": read(VIEW)}

    @extend_schema(responses={200: TaskStatusSerializer, 404: None})
    def get(self, request: Request, task_id: str) -> Response:
        result: AsyncResult[Any] = AsyncResult(task_id)
        state = result.state
        # Other apps' results are not ours to show (django-db keeps the name in its row).
        names = TaskResult.objects.filter(task_id=task_id).values_list("task_name", flat=True)
        name = names.first()
        if name and not name.startswith(tasks.TASK_PREFIX):
            raise Http404("not a seismograph task")
        progress = result.info if state == "PROGRESS" and isinstance(result.info, dict) else None
        outcome = result.result if state == "SUCCESS" and isinstance(result.result, dict) else {}
        if state == "SUCCESS":
            status_name = "succeeded" if outcome.get("ok") else "failed"
        elif state in {"FAILURE", "REVOKED"}:
            status_name = "failed"
        elif state in {"STARTED", "PROGRESS", "RETRY"}:
            status_name = "running"
        else:
            status_name = "pending"
        error = outcome.get("error")
        if state == "FAILURE":
            # The exception's text may name internals (hosts, queries): only its class.
            error = {"kind": "error", "message": type(result.result).__name__}
        elif state == "REVOKED":
            error = seismo_reads.EXPIRED
        return Response(
            {
                "task_id": task_id,
                "state": state,
                "status": status_name,
                "progress": progress,
                "result": outcome.get("result"),
                "error": error,
            }
        )
