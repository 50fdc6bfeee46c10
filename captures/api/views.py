"""The captures API: start/stop/status of operations, the transactions feed, downloads."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.http import FileResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from accounts.permissions import operate, perm, read
from captures import archive, services, storage
from captures.api.filters import OperationFilter, TransactionFilter
from captures.api.serializers import (
    CaptureStartSerializer,
    OperationSerializer,
    OperationStartSerializer,
    OperationStatusSerializer,
    SingleCaptureSerializer,
    TransactionSerializer,
)
from captures.api.throttles import OperationStartThrottle
from captures.models import Operation, OperationName, Transaction
from config.api import query_flag, query_int

log = logging.getLogger(__name__)
BINARY = OpenApiResponse(OpenApiTypes.BINARY, description="file contents")
VIEW_OPERATION = read(perm(Operation, "view"))
VIEW_TRANSACTION = read(perm(Transaction, "view"))


class TransactionFeedPagination(CursorPagination):
    """``?after=<cursor>``: stable under inserts, each page follows on from the last."""

    cursor_query_param = "after"
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int:
        size = query_int(request, self.page_size_query_param, 1, self.page_size)
        return min(size, self.max_page_size)

    def decode_cursor(self, request: Request):
        """An empty cursor is none (the schema allows it); a malformed one is DRF's 404."""
        if not request.query_params.get(self.cursor_query_param):
            return None
        return super().decode_cursor(request)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1)
        return parameters


class OperationViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Multi-capture operations (``multi_*``; single captures are listed here too)."""

    queryset = (
        Operation.objects.select_related("capture_group")
        .prefetch_related("channels", "reasons")
        .order_by("-id")
    )
    serializer_class = OperationSerializer
    lookup_field = "operation_id"
    lookup_value_regex = "[0-9a-f]{16}"
    filterset_class = OperationFilter
    throttle_classes = [OperationStartThrottle]
    access = {
        "list": VIEW_OPERATION,
        "retrieve": VIEW_OPERATION,
        "status_": VIEW_OPERATION,
        "archive": read(perm(Operation, "view"), perm(Transaction, "view")),
        "create": operate(perm(Operation, "add")),
        "stop": operate(perm(Operation, "change")),
    }

    @extend_schema(request=OperationStartSerializer, responses={201: OperationSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        """Start an operation: its rows, a tick every interval from now, then one final capture."""
        start = OperationStartSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        operation = start.save()
        return Response(OperationSerializer(operation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: OperationStatusSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, operation_id: str) -> Response:
        """Stop now: no more ticks, no final capture; idempotent."""
        operation = self.get_object()
        services.stop_operation(operation)
        operation.refresh_from_db()
        return Response(OperationStatusSerializer(operation).data)

    @extend_schema(responses={200: OperationStatusSerializer})
    @action(detail=True, methods=["get"], url_path="status")
    def status_(self, request: Request, operation_id: str) -> Response:
        """state, collected, time_remaining, updated: from the database, for any state."""
        return Response(OperationStatusSerializer(self.get_object()).data)

    @extend_schema(responses={(200, "application/zip"): BINARY})
    @action(detail=True, methods=["get"])
    def archive(self, request: Request, operation_id: str) -> StreamingHttpResponse:
        """Every file of the operation (decompressed) in a ZIP, streamed as it is built."""
        operation = self.get_object()
        entries = (
            Transaction.objects.filter(capture__operation=operation)
            .order_by("id")
            .values_list("filename", "stored_path")
        )
        pairs = ((name.removesuffix(".zst"), path) for name, path in entries.iterator())
        response = StreamingHttpResponse(
            _logged_abort(archive.stream_zip(pairs), operation.operation_id),
            content_type="application/zip",
        )
        name = f"{operation.name}_{operation.modem.mac_hex}_{operation.operation_id}.zip"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class SingleCaptureViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Single captures: one trigger of any PNM test, now (an operation of one tick)."""

    queryset = (
        Operation.objects.filter(name=OperationName.SINGLE_CAPTURE)
        .select_related("capture_group")
        .prefetch_related("channels", "reasons", "captures__transaction")
        .order_by("-id")
    )
    serializer_class = SingleCaptureSerializer
    lookup_field = "operation_id"
    lookup_url_kwarg = "capture_id"
    lookup_value_regex = "[0-9a-f]{16}"
    filterset_class = OperationFilter
    throttle_classes = [OperationStartThrottle]
    access = {
        "list": VIEW_OPERATION,
        "retrieve": VIEW_OPERATION,
        "create": operate(perm(Operation, "add")),
    }

    @extend_schema(request=CaptureStartSerializer, responses={201: SingleCaptureSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        """Start a single capture; poll its ``status_url`` until ``state`` is terminal."""
        start = CaptureStartSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        operation = start.save()
        body = SingleCaptureSerializer(operation, context={"request": request}).data
        location = reverse("capture-detail", args=[operation.operation_id], request=request)
        return Response(
            {**body, "status_url": location},
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )


def _logged_abort(chunks: Iterator[bytes], operation_id: str) -> Iterator[bytes]:
    """Pass the ZIP through; a damaged stored file aborts it (the archive is left without
    its central directory, so no client takes it for a complete one), with a log line."""
    try:
        yield from chunks
    except storage.StoredFileDamaged as exc:
        log.error("ZIP of operation %s aborted: %s", operation_id, exc)
        raise


class TransactionViewSet(viewsets.ReadOnlyModelViewSet):
    """The feed of stored PNM files, oldest first, cursor-paginated (``?after=``)."""

    queryset = Transaction.objects.select_related("capture__operation", "capture_group")
    serializer_class = TransactionSerializer
    lookup_field = "transaction_id"
    lookup_value_regex = "[0-9a-f]{16}"
    pagination_class = TransactionFeedPagination
    filterset_class = TransactionFilter
    access = {"list": VIEW_TRANSACTION, "retrieve": VIEW_TRANSACTION, "download": VIEW_TRANSACTION}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "raw", OpenApiTypes.BOOL, description="true: the stored zstd bytes, as stored"
            )
        ],
        responses={(200, "application/octet-stream"): BINARY, (200, "application/zstd"): BINARY},
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, transaction_id: str):
        """The file as the modem uploaded it, or with ``?raw=1`` as stored (.zst)."""
        record = get_object_or_404(Transaction, transaction_id=transaction_id)
        try:
            storage.check_stored_size(record.stored_path, record.size_after)
        except storage.StoredFileDamaged as exc:
            log.error("download of transaction %s refused: %s", transaction_id, exc)
            return Response(
                {"detail": str(exc), "code": "stored_file_damaged"},
                status=status.HTTP_500_INTERNAL_SERVER_ERROR,
            )
        if query_flag(request, "raw"):
            return FileResponse(
                storage.open_stored(record.stored_path),
                as_attachment=True,
                filename=record.filename,
                content_type="application/zstd",
            )
        response = StreamingHttpResponse(
            storage.iter_decompressed(record.stored_path), content_type="application/octet-stream"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{record.filename.removesuffix(".zst")}"'
        )
        response["Content-Length"] = str(record.size_before)
        return response
