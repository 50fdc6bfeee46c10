"""API-wide plumbing: the exception handler and the shared-cache throttle."""

from __future__ import annotations

import hashlib
import re
import time

from django.core.cache import cache
from django.core.checks import Error, Tags, register
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import exception_handler as drf_exception_handler

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])[a-z]*\s*$")


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "request body larger than DATA_UPLOAD_MAX_MEMORY_SIZE"
    default_code = "request_too_large"


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
            parse_rate(rate)
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
        limit, period = parse_rate(api_settings.DEFAULT_THROTTLE_RATES[self.scope])
        now = time.time()
        base = f"throttle:{self.scope}:{ident}"
        start = cache.get_or_set(f"{base}:start", now, timeout=period)
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
