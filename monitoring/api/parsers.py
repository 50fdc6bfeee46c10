"""Request parsers for sample batches, with a size limit of their own.

Batches are larger than Django's form-oriented DATA_UPLOAD_MAX_MEMORY_SIZE; these parsers
read the body up to MONITORING_MAX_BATCH_BYTES and answer 413 beyond it.
"""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser


class BatchTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "batch larger than MONITORING_MAX_BATCH_BYTES"
    default_code = "batch_too_large"


def read_limited(stream) -> bytes:
    limit = settings.MONITORING_MAX_BATCH_BYTES
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        raise BatchTooLarge()
    return data


class LineProtocolParser(BaseParser):
    """InfluxDB line protocol (``text/plain``), decoded as UTF-8."""

    media_type = "text/plain"

    # DRF hands request.data whatever a parser returns; the stub allows only mappings.
    def parse(self, stream, media_type=None, parser_context=None) -> str:  # type: ignore[override]
        try:
            return read_limited(stream).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"body is not UTF-8: {exc}") from None


class SampleJSONParser(BaseParser):
    """JSON samples: a list, or an object with a ``samples`` list."""

    media_type = "application/json"

    # As above: any JSON value.
    def parse(self, stream, media_type=None, parser_context=None) -> object:  # type: ignore[override]
        try:
            return json.loads(read_limited(stream))
        except ValueError as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
