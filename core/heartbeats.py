"""Liveness of long-running receivers, kept in the Django cache (Redis in production)."""

from __future__ import annotations

import os
import socket

from django.core.cache import cache

REGISTRY_KEY = "ingesters:registry"
HEARTBEAT_TTL_FACTOR = 3


def _key(name: str) -> str:
    return f"ingesters:{name}"


def record_heartbeat(name: str, snapshot: dict, interval_s: float = 5.0) -> None:
    """Store an ingester's metrics; they expire when it stops beating."""
    ttl = max(1, int(interval_s * HEARTBEAT_TTL_FACTOR))
    payload = {**snapshot, "host": socket.gethostname(), "pid": os.getpid()}
    cache.set(_key(name), payload, timeout=ttl)
    names = set(cache.get(REGISTRY_KEY) or ())
    if name not in names:
        cache.set(REGISTRY_KEY, sorted(names | {name}), timeout=None)


def live_ingesters() -> list[dict]:
    """Snapshots of the ingesters whose heartbeat has not expired."""
    names = cache.get(REGISTRY_KEY) or []
    found = cache.get_many([_key(name) for name in names])
    return [found[_key(name)] for name in names if _key(name) in found]
