"""Analysis endpoints: an operation's analysis and one transaction's analysis as
JSON/CSV/PNG/ZIP, one transaction parsed or plotted.

``format`` is DRF's format override, so each output has a renderer; the views stream their
own responses and only errors go through DRF rendering (always as JSON).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable, Iterator

from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException, NotAcceptable, NotFound, ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import perm, read
from captures.analyses import FileAnalysis
from captures.analyses.base import csv_bytes
from captures.analysis import (
    SNMP_SPECTRUM_TEST_TYPE,
    AnalysisError,
    AnalysisResult,
    AnalysisType,
    UnreadableFile,
    analyse,
    analyse_profile_performance,
    analyse_transaction,
    iter_csv,
    iter_json,
    load_transaction,
)
from captures.analysis_plots import analysis_png, file_png
from captures.archive import stream_members
from captures.models import Operation, Transaction
from captures.pnm import PnmFormatError

FORMATS = ["json", "csv", "png", "zip"]


class _BinaryRenderer(BaseRenderer):
    """Selects the output by ``?format=``; the views write the bytes themselves."""

    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class CsvRenderer(_BinaryRenderer):
    media_type = "text/csv"
    format = "csv"


class PngRenderer(_BinaryRenderer):
    media_type = "image/png"
    format = "png"


class ZipRenderer(_BinaryRenderer):
    media_type = "application/zip"
    format = "zip"


class JsonErrorsMixin(APIView):
    """Errors are JSON whatever output was asked for; an unknown ``format`` is a 400."""

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        try:
            return super().perform_content_negotiation(request, force)
        except (Http404, NotAcceptable):  # an unknown ?format=: the serializer says 400
            return JSONRenderer(), JSONRenderer.media_type

    def handle_exception(self, exc: Exception) -> Response:
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)


class AnalysisQuerySerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=[t.value for t in AnalysisType])
    format = serializers.ChoiceField(choices=FORMATS, default="json")


class FormatQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS, default="json")


class ParsedQuerySerializer(serializers.Serializer):
    # The query parameter is called "data". DRF takes declared fields off the class, so the
    # name hides nothing at run time.
    data = serializers.BooleanField(default=True)  # type: ignore[assignment]


def _release(result: AnalysisResult) -> None:
    """Drop the analysis arrays as soon as the last byte is out (cf. PyPNM's RSS creep)."""
    result.channels.clear()
    gc.collect()


def _stream(chunks: Iterable[bytes], result: AnalysisResult) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        _release(result)


def _later(make: Callable[[], bytes]) -> Iterator[bytes]:
    """One chunk, made only when the archive reaches this member."""
    yield make()


def _attachment(response: HttpResponseBase, file_name: str) -> HttpResponseBase:
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response


def file_analysis_response(result: FileAnalysis, output: str, name: str) -> HttpResponseBase:
    """JSON, CSV, PNG, or a ZIP of the three, for an analysis result."""

    def as_json() -> bytes:
        return json.dumps(result.as_dict(), allow_nan=False).encode()

    if output == "png":
        return HttpResponse(result.png(), content_type="image/png")
    if output == "csv":
        response = StreamingHttpResponse(csv_bytes(result.csv_rows()), content_type="text/csv")
        return _attachment(response, f"{name}.csv")
    if output == "zip":
        members = [
            (f"{name}.json", _later(as_json)),
            (f"{name}.csv", csv_bytes(result.csv_rows())),
            (f"{name}.png", _later(result.png)),
        ]
        response = StreamingHttpResponse(stream_members(members), content_type="application/zip")
        return _attachment(response, f"{name}.zip")
    return HttpResponse(as_json(), content_type="application/json")


def _operation_response(result: AnalysisResult, output: str, name: str) -> HttpResponseBase:
    if output == "png":
        body = analysis_png(result)
        _release(result)
        return HttpResponse(body, content_type="image/png")
    if output == "csv":
        response = StreamingHttpResponse(_stream(iter_csv(result), result), content_type="text/csv")
        return _attachment(response, f"{name}.csv")
    if output == "zip":
        members = [
            (f"{name}.json", iter_json(result)),
            (f"{name}.csv", iter_csv(result)),
            (f"{name}.png", _later(lambda: analysis_png(result))),
        ]
        response = StreamingHttpResponse(
            _stream(stream_members(members), result), content_type="application/zip"
        )
        return _attachment(response, f"{name}.zip")
    return StreamingHttpResponse(
        _stream(iter_json(result), result), content_type="application/json"
    )


class OperationAnalysisView(JsonErrorsMixin, APIView):
    renderer_classes = [JSONRenderer, CsvRenderer, PngRenderer, ZipRenderer]
    access = {"get": read(perm(Operation, "view"), perm(Transaction, "view"))}

    @extend_schema(
        operation_id="captures_operations_analysis",
        summary="Analyse an operation's captures",
        description=(
            "min-avg-max per subcarrier (RxMER dB, or |H| dB for channel estimation), a "
            "time x subcarrier heat map, group delay (channel estimation), or OFDM profile "
            "performance (each profile's MER need against the mean RxMER, with FEC "
            "totals). Streamed; zip holds the JSON, CSV and PNG."
        ),
        parameters=[
            OpenApiParameter("type", str, enum=[t.value for t in AnalysisType], required=True),
            OpenApiParameter("format", str, enum=FORMATS, default="json"),
        ],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "image/png"): OpenApiTypes.BINARY,
            (200, "application/zip"): OpenApiTypes.BINARY,
            400: OpenApiTypes.OBJECT,
            404: OpenApiTypes.OBJECT,
        },
    )
    def get(self, request: Request, operation_id: str):
        query = AnalysisQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        operation = get_object_or_404(Operation, operation_id=operation_id)
        analysis = AnalysisType(query.validated_data["type"])
        output = query.validated_data["format"]
        name = f"{operation_id}_{analysis}"
        try:
            if analysis is AnalysisType.OFDM_PROFILE_PERFORMANCE:
                performance = analyse_profile_performance(operation)
                return file_analysis_response(performance, output, name)
            result = analyse(operation, analysis)
        except AnalysisError as exc:
            raise ValidationError({"type": [str(exc)]}) from None
        return _operation_response(result, output, name)


class UnparseableFile(APIException):
    status_code = 422
    default_code = "unparseable_file"
    default_detail = "the stored file is not a valid PNM file"


def _transaction_file(transaction_id: str, read: Callable[[Transaction], object]):
    """``read`` applied to the transaction's stored file, with the API's errors: 404 for an
    unknown id or a missing file, 422 for a file that does not decompress or parse."""
    record = get_object_or_404(Transaction, transaction_id=transaction_id)
    try:
        return read(record)
    except PnmFormatError as exc:
        raise UnparseableFile(f"the stored file is not a valid PNM file: {exc}") from None
    except FileNotFoundError:
        raise NotFound(f"the stored file of transaction {transaction_id} is missing") from None
    except UnreadableFile as exc:
        raise UnparseableFile(f"the stored file cannot be read: {exc}") from None


def _walked(record: Transaction) -> bool:
    """Whether the transaction is the header-less SNMP spectrum: nothing parses it as a PNM
    file, so its analysis (which holds the same figures) stands in for it."""
    return record.pnm_test_type == SNMP_SPECTRUM_TEST_TYPE


def _summary(data: bool) -> Callable[[Transaction], dict]:
    def read(record: Transaction) -> dict:
        if _walked(record):
            return analyse_transaction(record).as_dict()
        return load_transaction(record).as_dict(data=data)

    return read


def _plot(record: Transaction) -> bytes:
    if _walked(record):
        return analyse_transaction(record).png()
    return file_png(load_transaction(record))


class TransactionParsedView(JsonErrorsMixin, APIView):
    renderer_classes = [JSONRenderer]
    access = {"get": read(perm(Transaction, "view"))}

    @extend_schema(
        operation_id="captures_transactions_parsed",
        summary="A transaction's PNM file, parsed",
        description="Header fields, derived figures and per-subcarrier data (NaN as null).",
        parameters=[
            OpenApiParameter(
                "data", bool, default=True, description="include per-subcarrier arrays"
            )
        ],
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiTypes.OBJECT,
            404: OpenApiTypes.OBJECT,
            422: OpenApiTypes.OBJECT,
        },
    )
    def get(self, request: Request, transaction_id: str) -> Response:
        query = ParsedQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        read = _summary(query.validated_data["data"])
        return Response(_transaction_file(transaction_id, read))


class TransactionPlotView(JsonErrorsMixin, APIView):
    renderer_classes = [PngRenderer, JSONRenderer]
    access = {"get": read(perm(Transaction, "view"))}

    @extend_schema(
        operation_id="captures_transactions_plot",
        summary="A plot of a transaction's PNM file",
        responses={
            (200, "image/png"): OpenApiTypes.BINARY,
            404: OpenApiTypes.OBJECT,
            422: OpenApiTypes.OBJECT,
        },
    )
    def get(self, request: Request, transaction_id: str) -> HttpResponse:
        png = _transaction_file(transaction_id, _plot)
        return HttpResponse(png, content_type="image/png")


class TransactionAnalysisView(JsonErrorsMixin, APIView):
    renderer_classes = [JSONRenderer, CsvRenderer, PngRenderer, ZipRenderer]
    access = {"get": read(perm(Transaction, "view"))}

    @extend_schema(
        operation_id="captures_transactions_analysis",
        summary="The analysis of a transaction's PNM file",
        description=(
            "Chosen by the file type: RxMER, channel estimation, constellation (MER), "
            "histogram, pre-equaliser taps, FEC summary over time, spectrum, modulation "
            "bit-loading, symbol capture. zip holds the JSON, CSV and PNG."
        ),
        parameters=[OpenApiParameter("format", str, enum=FORMATS, default="json")],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "image/png"): OpenApiTypes.BINARY,
            (200, "application/zip"): OpenApiTypes.BINARY,
            400: OpenApiTypes.OBJECT,
            404: OpenApiTypes.OBJECT,
            422: OpenApiTypes.OBJECT,
        },
    )
    def get(self, request: Request, transaction_id: str) -> HttpResponseBase:
        query = FormatQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        result: FileAnalysis = _transaction_file(transaction_id, analyse_transaction)
        return file_analysis_response(
            result, query.validated_data["format"], f"{transaction_id}_{result.kind}"
        )
