"""The OpenAPI schema's default AutoSchema: every operation documents the errors it can
answer, so a new endpoint is exact without listing them itself.

Errors are always JSON (``{"detail": ...}``; a 400 names the fields it refuses). Codes a
view documents with a body of its own are kept; one documented without a body gets the
error body. Filter and paging parameters may be sent empty, meaning absent.
"""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.pagination import CursorPagination

JSON = ("application/json",)
NO_NUL = "^[^\\u0000]*$"


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


VALIDATION = OpenApiResponse(OpenApiTypes.OBJECT, description="Refused input, by field name")
ERRORS = {
    "401": OpenApiResponse(ErrorSerializer, description="No or invalid credentials"),
    "403": OpenApiResponse(ErrorSerializer, description="Not permitted"),
    "404": OpenApiResponse(ErrorSerializer, description="No such object"),
    "413": OpenApiResponse(ErrorSerializer, description="Request body too large"),
    "415": OpenApiResponse(ErrorSerializer, description="Unsupported request media type"),
    "429": OpenApiResponse(ErrorSerializer, description="Rate limited: see Retry-After"),
    # Answered by the web server in front (gunicorn, nginx) before the app: no JSON body.
    "414": OpenApiResponse(description="URI too long"),
}


class AutoSchema(openapi.AutoSchema):
    def _error_codes(self) -> dict[str, OpenApiResponse]:
        codes = {"400": VALIDATION, "401": ERRORS["401"], "403": ERRORS["403"]}
        codes["414"] = ERRORS["414"]
        paginator = getattr(self.view, "pagination_class", None)
        if "{" in self.path or (paginator and issubclass(paginator, CursorPagination)):
            codes["404"] = ERRORS["404"]  # no such object, or (DRF) a malformed cursor
        if self.method in ("POST", "PUT", "PATCH"):
            codes["413"] = ERRORS["413"]
            codes["415"] = ERRORS["415"]
        if getattr(self.view, "throttle_classes", None):
            codes["429"] = ERRORS["429"]
        return codes

    def _get_filter_parameters(self):
        parameters = _empty_allowed(super()._get_filter_parameters())
        for parameter in parameters:
            _no_nul(parameter["schema"])
        return parameters

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and isinstance(field, serializers.CharField):
            _no_nul(schema)
        return schema

    def _get_pagination_parameters(self):
        return _empty_allowed(super()._get_pagination_parameters())

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, error in self._error_codes().items():
            if code not in responses or "content" not in responses[code]:
                media = JSON if error.response else None
                responses[code] = self._get_response_for_code(error, code, media, direction)
        return responses


def _no_nul(schema: dict) -> None:
    """Django and DRF refuse NUL in any text field or filter (400): say so, on a free-form
    string (one with a pattern, format or enum is narrower already)."""
    if schema.get("type") == "string" and not {"pattern", "format", "enum"} & schema.keys():
        schema["pattern"] = NO_NUL


def _empty_allowed(parameters: list[dict]) -> list[dict]:
    """Filters and paging read an empty value (``?modem=``) as an absent one."""
    return [{**parameter, "allowEmptyValue": True} for parameter in parameters]
