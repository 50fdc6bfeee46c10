"""How the API answers a seismograph read without ever blocking on the unit for long.

fresh → 200 from the cache; stale → 200 with the cached copy marked stale and one refresh
started (single flight); nothing cached, or ``?force=true`` → start (or join) the refresh
and wait at most SEISMO_API_WAIT_S for it, then 200 from the device or 202 with the task
to poll. A recent failure (negative cache) or an offline unit is not dialled again unless
forced: the stale copy is served with ``last_error``, or the error itself (refused or
busy in another session → 503, timeout → 504, other link failures → 502). No answer
takes longer than SEISMO_API_WAIT_S plus a few polls.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from celery import Task
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404
from django.utils import timezone

from seismographs import cache as seismo_cache
from seismographs import tasks
from seismographs.models import SeismoEvent, Seismograph, SeismoWaveform

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

ERROR_STATUS = {
    "refused": 503,
    "busy": 503,
    "timeout": 504,
    "rejected": 400,
    "no_such_event": 404,
    "gone": 404,
    "expired": 503,
}
EXPIRED = {"kind": "expired", "message": "not started in time (unit busy); nothing was done"}
_POLL_S = 0.02


@dataclass(frozen=True)
class Cached:
    """A cached copy. ``dirty`` means known to be outdated (info after a config write):
    it is then only a fallback when the unit cannot be reached, never served as stale."""

    data: Any
    fetched_at: dt.datetime | None
    fresh: bool
    dirty: bool = False


@dataclass(frozen=True)
class Resource:
    """One cached thing: its flight/stat name, how to look it up, how to refresh it."""

    name: str
    layer: str
    lookup: Callable[[Seismograph], Cached | None]
    task: Task
    task_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    status: int
    data: Any = None
    fetched_at: dt.datetime | None = None
    source: str | None = None
    stale: bool = False
    last_error: dict | None = None
    task_id: str | None = None
    offline: bool = False

    def body(self) -> dict[str, Any]:
        age = None
        if self.fetched_at is not None:
            age = round(max(0.0, (timezone.now() - self.fetched_at).total_seconds()), 3)
        return {
            "data": self.data,
            "fetched_at": self.fetched_at.isoformat() if self.fetched_at else None,
            "age_s": age,
            "source": self.source,
            "stale": self.stale,
            "refreshing": self.task_id is not None and self.status == 200,
            "task_id": self.task_id,
            "last_error": self.last_error,
            "offline": self.offline,
        }


def last_error(device: Seismograph) -> dict | None:
    if not device.last_error_kind:
        return None
    return {
        "kind": device.last_error_kind,
        "message": device.last_error,
        "at": device.last_error_at.isoformat() if device.last_error_at else None,
    }


def dispatch(
    device_id: int, resource: str, task: Task, *, expires_s: float | None = None, **kwargs: Any
) -> str:
    """Start the refresh of ``resource`` unless one is in flight; return its task id.

    A marker whose task has already ended (killed at its hard time limit, or its worker
    process lost, before it could release the marker) is taken over instead of joined, so
    requests do not wait on a dead task until the marker expires. A task still queued or
    running is joined: the device lock would refuse a second session anyway.
    """
    task_id = uuid.uuid4().hex
    owner = seismo_cache.claim_flight(device_id, resource, task_id)
    if owner != task_id and AsyncResult(owner).ready():
        seismo_cache.release_flight(device_id, resource, owner)
        owner = seismo_cache.claim_flight(device_id, resource, task_id)
    if owner == task_id:
        try:
            task.apply_async(
                kwargs={"device_id": device_id, "requested_at": time.time(), **kwargs},
                task_id=task_id,
                expires=expires_s,  # type: ignore[arg-type]  # None: no expiry; stub says no None
            )
        except Exception:
            seismo_cache.release_flight(device_id, resource, task_id)
            raise
    return owner


def wait_for(device_id: int, resource: str, task_id: str, timeout_s: float) -> bool:
    """True once the task released its flight marker, False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while seismo_cache.flight_task(device_id, resource) == task_id:
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _stale_copy(
    device: Seismograph, cached: Cached, error: dict | None, task_id: str | None = None
) -> Reply:
    return Reply(
        200,
        cached.data,
        cached.fetched_at,
        "cache",
        stale=True,
        last_error=error,
        task_id=task_id,
        offline=device.offline,
    )


def _outcome_error(task_id: str, wait_s: float) -> dict | None:
    """Why a refresh ended without data when it recorded no link failure on the device:
    the unit stayed busy in another session, it was deleted, or the task itself crashed.
    The flight marker is released just before the result is stored, hence the short wait."""
    result: AsyncResult[Any] = AsyncResult(task_id)
    try:
        outcome = result.get(timeout=wait_s, interval=_POLL_S, propagate=False)
    except CeleryTimeoutError:
        return None
    if isinstance(outcome, dict):
        return None if outcome.get("ok") else outcome.get("error")
    return {"kind": "error", "message": "the refresh task failed; see the worker log"}


def _failed(device: Seismograph, cached: Cached | None, error: dict | None) -> Reply:
    """The unit could not be reached: the cached copy labelled stale, else the error."""
    if cached is not None:
        return _stale_copy(device, cached, error)
    status = ERROR_STATUS.get((error or {}).get("kind", ""), 502)
    return Reply(status, stale=True, last_error=error, offline=device.offline)


def serve(device: Seismograph, resource: Resource, force: bool = False) -> Reply:
    """Answer a read of ``resource`` by the rules in the module docstring."""
    started = timezone.now()
    cached = resource.lookup(device)
    if cached is not None and cached.fresh and not force:
        seismo_cache.count(device.pk, resource.layer, hit=True)
        return Reply(200, cached.data, cached.fetched_at, "cache", offline=device.offline)
    seismo_cache.count(device.pk, resource.layer, hit=False)
    negative = seismo_cache.negative_entry(device.pk)
    if negative is not None and not force:
        return _failed(device, cached, last_error(device) or negative)
    task_id = dispatch(device.pk, resource.name, resource.task, **resource.task_kwargs)
    if cached is not None and not force and not cached.dirty:
        return _stale_copy(device, cached, last_error(device), task_id)
    deadline = time.monotonic() + settings.SEISMO_API_WAIT_S
    if not wait_for(device.pk, resource.name, task_id, settings.SEISMO_API_WAIT_S):
        return Reply(
            202,
            source="device",
            stale=cached is not None,
            last_error=last_error(device),
            task_id=task_id,
            offline=device.offline,
        )
    device.refresh_from_db()
    error = last_error(device)
    if error is not None and device.last_error_at and device.last_error_at >= started:
        return _failed(device, cached, error)
    answer = resource.lookup(device)
    if answer is None:
        failure = _outcome_error(task_id, max(_POLL_S * 5, deadline - time.monotonic()))
        if failure is not None:
            return _failed(device, cached, failure)
        return Reply(404, last_error=error, offline=device.offline)
    return Reply(
        200,
        answer.data,
        answer.fetched_at,
        "device" if answer.fetched_at and answer.fetched_at >= started else "cache",
        stale=not answer.fresh,
        last_error=error,
        offline=device.offline,
    )


# --- the resources -----------------------------------------------------------------------------


def _events_fresh(device: Seismograph) -> bool:
    if device.events_stale or device.events_checked_at is None:
        return False
    age = (timezone.now() - device.events_checked_at).total_seconds()
    return age < settings.SEISMO_EVENTS_TTL_S


def info_resource() -> Resource:
    def lookup(device: Seismograph) -> Cached | None:
        if device.info is None:
            return None
        data = {**device.info, "event_count": device.event_count, "conn_key": device.conn_key}
        dirty = device.config_dirty
        return Cached(data, device.info_fetched_at, not dirty, dirty)

    return Resource("info", "info", lookup, tasks.refresh_info)


def event_json(event: SeismoEvent, has_waveform: bool) -> dict[str, Any]:
    return {**event.header, "index": event.device_index, "has_waveform": has_waveform}


class _Slot(TypedDict):
    has_waveform: bool


def _slots(device: Seismograph) -> QuerySet[WithAnnotations[SeismoEvent, _Slot]]:
    """Events at their current index, with a flag (not the bytes) for a stored waveform."""
    stored = SeismoWaveform.objects.filter(event=OuterRef("pk"))
    return (
        SeismoEvent.objects.filter(device=device, device_index__isnull=False)
        .annotate(has_waveform=Exists(stored))
        .order_by("device_index")
    )


def events_resource() -> Resource:
    def lookup(device: Seismograph) -> Cached | None:
        if device.events_checked_at is None:
            return None
        events = [event_json(e, e.has_waveform) for e in _slots(device)]
        return Cached(events, device.events_checked_at, _events_fresh(device))

    return Resource("events", "events", lookup, tasks.sync_events)


class NoEvent(Http404):
    """The unit's event count is fresh and the index is beyond it (the API answers 404)."""


def _check_index(device: Seismograph, index: int) -> None:
    """No dial for an index beyond the count of a fresh probe."""
    if device.event_count is not None and index >= device.event_count and _events_fresh(device):
        raise NoEvent(index)


def event_resource(index: int) -> Resource:
    def lookup(device: Seismograph) -> Cached | None:
        event = _slots(device).filter(device_index=index).first()
        if event is None:
            _check_index(device, index)
            return None
        data = event_json(event, event.has_waveform)
        return Cached(data, device.events_checked_at, _events_fresh(device))

    return Resource("events", "events", lookup, tasks.sync_events)


def waveform_resource(index: int, force: bool) -> Resource:
    """Waveforms are immutable: once stored for the event at ``index`` they stay fresh. The
    refresh task reads the header at the index itself, so no event sync is needed first."""

    def lookup(device: Seismograph) -> Cached | None:
        rows = SeismoWaveform.objects.select_related("event")
        row = rows.filter(event__device=device, event__device_index=index).first()
        if row is None:
            _check_index(device, index)
            return None
        return Cached(row, row.fetched_at, True)

    return Resource(
        f"waveform:{index}",
        "waveforms",
        lookup,
        tasks.fetch_waveform,
        {"index": index, "force": force},
    )


def monitor_resource() -> Resource:
    def lookup(device: Seismograph) -> Cached | None:
        entry = seismo_cache.get_monitor(device.pk)
        if entry is None:
            return None
        data = {**entry["data"], "pending": seismo_cache.get_monitor_pending(device.pk)}
        fetched = dt.datetime.fromtimestamp(entry["fetched_at"], dt.UTC)
        return Cached(data, fetched, True)

    return Resource("monitor", "monitor", lookup, tasks.refresh_monitor)


def run_command(device: Seismograph, name: str, task: Task, **kwargs: Any) -> Reply:
    """A write (config, start/stop, erase): always to the device, through its single flight
    and the bounded wait; 200 with the task's outcome, 202 with the task to poll, or the
    failure (a value the unit rejected → 400, not started within SEISMO_COMMAND_EXPIRES_S
    → 503 "expired")."""
    flight = seismo_cache.command_flight(name, **kwargs)
    expires_s = settings.SEISMO_COMMAND_EXPIRES_S
    task_id = dispatch(device.pk, flight, task, expires_s=expires_s, **kwargs)
    result: AsyncResult[Any] = AsyncResult(task_id)
    deadline = time.monotonic() + settings.SEISMO_API_WAIT_S
    while not result.ready():
        if time.monotonic() >= deadline:
            return Reply(202, source="device", last_error=last_error(device), task_id=task_id)
        time.sleep(_POLL_S * 2)
    outcome: dict[str, Any] = result.result if isinstance(result.result, dict) else {"ok": False}
    if result.state == "REVOKED":
        outcome = {"ok": False, "error": EXPIRED}
    device.refresh_from_db()
    if not outcome.get("ok"):
        return _failed(device, None, outcome.get("error") or last_error(device))
    return Reply(200, outcome.get("result"), timezone.now(), "device", offline=device.offline)
