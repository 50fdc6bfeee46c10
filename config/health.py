"""Reachability checks for /health/: database, broker and cache, each with a timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from config.celery_app import app as celery_app


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str = ""


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    timeout = settings.HEALTH_CHECK_TIMEOUT_S
    with celery_app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
        # kombu takes float seconds; celery-types narrows timeout to int.
        conn.ensure_connection(max_retries=1, timeout=timeout, interval_start=0)  # type: ignore[arg-type]
        # A server-backed transport must answer a round trip, not just accept a socket.
        if hasattr(conn.default_channel, "client") and hasattr(conn.default_channel.client, "ping"):
            conn.default_channel.client.ping()


def check_cache() -> None:
    key = "health:probe"
    cache.set(key, "ok", timeout=10)
    if cache.get(key) != "ok":
        raise RuntimeError("cache did not return the value just written")


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "broker": check_broker,
    "cache": check_cache,
}


def run_checks() -> list[CheckResult]:
    results = []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure means "not reachable"; the message says why
            results.append(
                CheckResult(name, False, _elapsed_ms(started), f"{type(exc).__name__}: {exc}")
            )
        else:
            results.append(CheckResult(name, True, _elapsed_ms(started)))
    return results


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
