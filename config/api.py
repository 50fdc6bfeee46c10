"""API-wide plumbing: JSON errors, strict query parameters, the shared-cache throttle."""

from __future__ import annotations

import hashlib
import re
import time
from typing import overload

from django.core.cache import cache
from django.core.checks import Error, Tags, register
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import models
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import pagination, serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import exception_handler as drf_exception_handler

_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])[a-z]*\s*$")


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "request body larger than DATA_UPLOAD_MAX_MEMORY_SIZE"
    default_code = "request_too_large"


class StrictCharField(serializers.CharField):
    """A string field that takes only JSON strings: DRF's own turns 0 into "0", so a
    number sent where the schema says string would be stored instead of refused."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    """A model serializer whose text fields refuse non-strings (see StrictCharField)."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: under /api/ a URL no route matches answers JSON like any API error."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter: true/false, 1/0, yes/no, absent = false; anything else
    (an empty value too) is a 400."""
    if name not in request.query_params:
        return False
    value = request.query_params[name].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationError({name: ["true or false"]})


@overload
def query_int(request: Request, name: str, minimum: int, default: int) -> int: ...
@overload
def query_int(request: Request, name: str, minimum: int, default: None) -> int | None: ...
def query_int(request: Request, name: str, minimum: int, default: int | None) -> int | None:
    """An integer query parameter of at least ``minimum`` (missing or empty: ``default``);
    anything else is a 400."""
    value = request.query_params.get(name, "")
    if value == "":
        return default
    if not re.fullmatch(r"[0-9]+", value) or int(value) < minimum:
        raise ValidationError({name: [f"an integer of at least {minimum}"]})
    return int(value)


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter ignores a filter whose value it cannot use (``?active=maybe``) and
    lists everything; here that is a 400 naming the filter. An empty value (``?modem=``)
    still means no filter, as the schema says (allowEmptyValue); so does a blank one, which
    the form strips to empty."""

    def get_filterset(self, request: HttpRequest, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        if filterset is None or not filterset.is_valid():
            return filterset
        unused = [
            name
            for name in filterset.filters
            if request.GET.get(name, "").strip() != ""
            and filterset.form.cleaned_data.get(name) in (None, "")
        ]
        if unused:
            raise ValidationError({name: ["not a usable value"] for name in unused})
        return filterset


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's, except that a malformed ``limit`` or ``offset`` is a 400 (DRF ignores it)
    and the schema says which values are valid."""

    def get_limit(self, request: Request) -> int | None:
        limit = query_int(request, self.limit_query_param, 1, self.default_limit)
        return min(limit, self.max_limit) if limit and self.max_limit else limit

    def get_offset(self, request: Request) -> int:
        return query_int(request, self.offset_query_param, 0, 0)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            minimum = 1 if parameter["name"] == self.limit_query_param else 0
            parameter["schema"]["minimum"] = minimum
        return parameters


def exception_handler(exc, context):
    """DRF's handler, plus JSON (not Django's HTML 400 page) for bodies over the limit."""
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, TooManyFieldsSent):
        exc = RequestTooLarge("too many form fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)")
    return drf_exception_handler(exc, context)


def parse_rate(rate: str) -> tuple[int, int]:
    """``"6/m"`` → (6, 60); ``"1/10s"`` → (1, 10)."""
    match = _RATE.match(rate)
    if not match:
        raise ValueError(f"throttle rate {rate!r}: expected N/period, e.g. 6/m or 1/10s")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _PERIODS[unit]


@register(Tags.security)
def check_throttle_rates(app_configs, **kwargs) -> list[Error]:
    """A malformed THROTTLE_* value stops start-up instead of failing every request."""
    errors = []
    for scope, rate in api_settings.DEFAULT_THROTTLE_RATES.items():
        try:
            parse_rate(str(rate))
        except ValueError as exc:
            errors.append(Error(f"THROTTLE_{scope.upper()}: {exc}", id="fieldrelay.E101"))
    return errors


def hashed(value: object) -> str:
    """A cache-key part for a value that must not appear in Redis (a token key)."""
    return hashlib.blake2b(str(value).encode(), digest_size=12).hexdigest()


class SharedCacheThrottle(BaseThrottle):
    """At most N requests per identity per window of P seconds. A window opens at the
    first request after the last one closed; its start and its count live in the shared
    cache (set-if-absent and INCR are atomic in Redis), so the limit holds across web
    processes. ``wait`` (Retry-After) is the time left in the window.

    Subclasses set ``scope`` (a key of DEFAULT_THROTTLE_RATES) and ``identity``.
    """

    scope = ""

    def identity(self, request, view) -> str | None:
        """What is limited (a device, a modem, a token); None: this request is not."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        ident = self.identity(request, view)
        if ident is None:
            return True
        limit, period = parse_rate(str(api_settings.DEFAULT_THROTTLE_RATES[self.scope]))
        now = time.time()
        base = f"throttle:{self.scope}:{ident}"
        start = float(cache.get_or_set(f"{base}:start", now, timeout=period) or now)
        key = f"{base}:{start:.6f}"
        cache.add(key, 0, timeout=period + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # the window closed between add and incr
            return True
        self._wait = max(start + period - now, 0.0)
        return count <= limit

    def wait(self) -> float:
        return self._wait
