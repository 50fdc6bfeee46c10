"""Project-level views."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.health import run_checks


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when database, broker and cache answer; 503 naming each part that does not."""
    results = run_checks()
    failing = [result.name for result in results if not result.ok]
    body = {
        "status": "ok" if not failing else "unavailable",
        "failing": failing,
        "checks": {
            result.name: {"ok": result.ok, "latency_ms": result.latency_ms, "error": result.error}
            for result in results
        },
    }
    return JsonResponse(body, status=503 if failing else 200)
