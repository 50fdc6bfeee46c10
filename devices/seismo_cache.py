"""Live, shared, short-lived seismograph state, kept in the Django cache.

Redis in production and tests, a file cache in the embedded demo: everything here goes
through the Django cache API so both work. Per device: the monitor status (30 s TTL), the
session lock (``cache.add`` with a timeout, so a dead worker cannot hold it for ever), a
short negative cache of the last failure, the consecutive-failure counter, single-flight
markers (one refresh task per resource at a time) and hit/miss counters per cache layer.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.cache import cache

LAYERS = ("info", "events", "waveforms", "monitor")
PLOT_TTL_S = 3600
_DAY_S = 86400


def _key(device_id: int, *parts: str) -> str:
    return ":".join(["seismo", str(device_id), *parts])


# --- monitor status --------------------------------------------------------------------


def get_monitor(device_id: int) -> dict | None:
    return cache.get(_key(device_id, "monitor"))


def set_monitor(device_id: int, entry: dict) -> None:
    cache.set(_key(device_id, "monitor"), entry, timeout=settings.SEISMO_MONITOR_TTL_S)


def evict_monitor(device_id: int) -> None:
    cache.delete(_key(device_id, "monitor"))


def set_monitor_pending(device_id: int, action: str | None) -> None:
    """Remember a start/stop the unit has not confirmed yet (start takes ~40 s)."""
    key = _key(device_id, "monitor-pending")
    if action is None:
        cache.delete(key)
    else:
        cache.set(key, action, timeout=settings.SEISMO_MONITOR_PENDING_S)


def get_monitor_pending(device_id: int) -> str | None:
    return cache.get(_key(device_id, "monitor-pending"))


# --- device session lock ----------------------------------------------------------------


@contextmanager
def device_lock(device_id: int) -> Iterator[bool]:
    """Yield True when this caller owns the device's one link session, else False.

    The lock expires after SEISMO_LOCK_TTL_S (longer than any session) so a killed worker
    cannot wedge a unit; it is released only by the owner that still holds it. The Django
    cache has no compare-and-delete, so the release is get-then-delete: safe because the
    TTL exceeds the tasks' hard time limit, so an owner that reaches the release still
    holds a live lock (a task killed at the limit never reaches it).
    """
    key = _key(device_id, "lock")
    token = uuid.uuid4().hex
    acquired = cache.add(key, token, timeout=settings.SEISMO_LOCK_TTL_S)
    try:
        yield acquired
    finally:
        if acquired and cache.get(key) == token:
            cache.delete(key)


def is_locked(device_id: int) -> bool:
    return cache.get(_key(device_id, "lock")) is not None


# --- single flight ------------------------------------------------------------------------


def command_flight(name: str, **params: Any) -> str:
    """The flight of a write: the same write joins one in flight, a different one (stop
    while a start runs, other config values) gets its own flight and queues on the device
    lock, instead of being answered with another write's outcome and never applied."""
    if not params:
        return name
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    return f"{name}:{digest[:16]}"


def claim_flight(device_id: int, resource: str, task_id: str) -> str:
    """Return the task id refreshing ``resource``: ours if we claimed it, else the running one."""
    key = _key(device_id, "flight", resource)
    if cache.add(key, task_id, timeout=settings.SEISMO_LOCK_TTL_S):
        return task_id
    return cache.get(key) or task_id


def release_flight(device_id: int, resource: str, task_id: str | None) -> None:
    key = _key(device_id, "flight", resource)
    if cache.get(key) == task_id:
        cache.delete(key)


def flight_task(device_id: int, resource: str) -> str | None:
    return cache.get(_key(device_id, "flight", resource))


# --- failures -------------------------------------------------------------------------------


def record_failure(device_id: int, error: dict) -> int:
    """Count the failure and negative-cache it; return the consecutive-failure count.

    Requests do not dial while the entry lives: a few seconds normally, longer once the
    unit is offline (SEISMO_OFFLINE_AFTER failures in a row), so a dead modem is not
    dialled on every page load. ``?force=true`` still may.
    """
    failures = _incr(_key(device_id, "failures"), timeout=_DAY_S)
    offline = failures >= settings.SEISMO_OFFLINE_AFTER
    ttl = settings.SEISMO_OFFLINE_RETRY_S if offline else settings.SEISMO_NEGATIVE_TTL_S
    cache.set(_key(device_id, "negative"), {**error, "failures": failures}, timeout=ttl)
    return failures


def record_success(device_id: int) -> None:
    cache.delete_many([_key(device_id, "negative"), _key(device_id, "failures")])


def negative_entry(device_id: int) -> dict | None:
    return cache.get(_key(device_id, "negative"))


def failure_count(device_id: int) -> int:
    return int(cache.get(_key(device_id, "failures")) or 0)


# --- hit / miss counters ----------------------------------------------------------------------


def _incr(key: str, timeout: int | None) -> int:
    """One round trip when the counter exists (the cache-hit path counts every request)."""
    try:
        return cache.incr(key)
    except ValueError:  # first count, or expired
        if cache.add(key, 1, timeout=timeout):
            return 1
        return cache.incr(key)


def count(device_id: int, layer: str, hit: bool) -> None:
    _incr(_key(device_id, "stats", layer, "hits" if hit else "misses"), timeout=None)


def counters(device_ids: list[int]) -> dict[str, dict[str, int]]:
    """Hits and misses per layer, summed over ``device_ids``."""
    keys = {
        _key(i, "stats", layer, outcome): (layer, outcome)
        for i in device_ids
        for layer in LAYERS
        for outcome in ("hits", "misses")
    }
    result = {layer: {"hits": 0, "misses": 0} for layer in LAYERS}
    for key, value in cache.get_many(list(keys)).items():
        layer, outcome = keys[key]
        result[layer][outcome] += int(value)
    return result


def monitor_entries(device_ids: list[int]) -> dict[int, Any]:
    found = cache.get_many([_key(i, "monitor") for i in device_ids])
    return {i: found[_key(i, "monitor")] for i in device_ids if _key(i, "monitor") in found}


def clear_device(device_id: int) -> int:
    """Drop every live key of one device (not its global counters' share); return how many
    monitor entries were dropped (0 or 1), the only layer with rows here."""
    had_monitor = cache.get(_key(device_id, "monitor")) is not None
    cache.delete_many(
        [
            _key(device_id, "monitor"),
            _key(device_id, "monitor-pending"),
            _key(device_id, "negative"),
            _key(device_id, "failures"),
            *(_key(device_id, "flight", r) for r in ("info", "events", "monitor")),
            *(_key(device_id, "stats", layer, o) for layer in LAYERS for o in ("hits", "misses")),
        ]
    )
    return int(had_monitor)


# --- rendered waveform plots ------------------------------------------------------------------


def rendered_plot(sha256: str, max_points: int, render: Callable[[], bytes]) -> bytes:
    """A waveform's decimated JSON by content hash and size. Waveforms are immutable, so
    the rendering never goes stale; the TTL only bounds the memory it holds."""
    key = f"seismo:plot:{sha256}:{max_points}"
    body = cache.get(key)
    if body is None:
        body = render()
        cache.set(key, body, timeout=PLOT_TTL_S)
    return body
