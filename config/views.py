"""Project-level views."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.health import run_checks


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when database, broker and cache answer, else 503.

    Anyone may ask (load balancers, container probes), but only staff see which part failed
    and why: error texts name hosts and ports an outsider has no business knowing.
    """
    results = run_checks()
    failing = [result.name for result in results if not result.ok]
    body: dict[str, object] = {"status": "ok" if not failing else "unavailable"}
    if request.user.is_authenticated and request.user.is_staff:
        body["failing"] = failing
        body["checks"] = {
            result.name: {"ok": result.ok, "latency_ms": result.latency_ms, "error": result.error}
            for result in results
        }
    return JsonResponse(body, status=503 if failing else 200)
