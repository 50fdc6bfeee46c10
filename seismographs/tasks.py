"""Seismograph transfers as Celery tasks; all on the ``serial`` queue.

Thin wrappers over ``seismographs.services``: ids in, a small JSON outcome out (the API's
task-status endpoint reads it). Every task carries ``requested_at`` (epoch seconds): a
unit whose lock another worker holds is retried shortly until SEISMO_LOCK_WAIT_S after
that; transient link errors (noise, a dropped line) are retried with backoff and jitter;
when a task gives up the failure is counted once. Either way the single-flight marker is
released at the end, so the next request may start a new refresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from config.queues import Queue
from core.retry import backoff_s
from seismographs import cache as seismo_cache
from seismographs import services
from seismographs.models import Seismograph
from seismographs.protocol.errors import SeismoLinkError

# The unit answered: these say nothing about the link's health.
NOT_LINK_FAILURES = {"rejected", "no_such_event"}
# Worth an immediate retry: line noise and a line dropped mid-transfer. A refusing or
# silent unit is not hammered; the negative cache and the next request deal with it.
RETRY_KINDS = {"checksum", "dropped"}


def _run(task: Task, device_id: int, resource: str, work: Callable[[], Any]) -> dict[str, Any]:
    kwargs = dict(task.request.kwargs or {})
    task_id = str(task.request.id)
    attempt = kwargs.get("attempt", 0)
    try:
        result = work()
    except services.DeviceBusy as exc:
        if time.time() - kwargs["requested_at"] < settings.SEISMO_LOCK_WAIT_S:
            raise task.retry(countdown=backoff_s(0, 1.0, jitter=0.8)) from exc  # 0.2 to 1 s
        outcome = {
            "ok": False,
            "error": {"kind": "busy", "message": "unit busy in another session"},
        }
    except Seismograph.DoesNotExist:  # deleted while the task was queued
        outcome = {"ok": False, "error": {"kind": "gone", "message": "device deleted"}}
    except SeismoLinkError as exc:
        if exc.transient and exc.kind in RETRY_KINDS and attempt < settings.SEISMO_TASK_RETRIES:
            raise task.retry(
                kwargs={**kwargs, "attempt": attempt + 1},
                # from SEISMO_RETRY_BACKOFF_S * 2**attempt to twice that
                countdown=backoff_s(attempt, 2 * settings.SEISMO_RETRY_BACKOFF_S, jitter=0.5),
            ) from exc
        if exc.kind not in NOT_LINK_FAILURES:
            services.note_failure(device_id, exc)
        outcome = {"ok": False, "error": services.error_payload(exc)}
    except Exception:
        # A bug or a database outage: the task fails loudly, but it must not leave its
        # flight marker behind for requests to wait on.
        seismo_cache.release_flight(device_id, resource, task_id)
        raise
    else:
        outcome = {"ok": True, "result": result}
    seismo_cache.release_flight(device_id, resource, task_id)
    return outcome


# Names are those of the devices app the tasks were first registered in, so messages
# already queued under them are still run; the task-status endpoint knows ours by it.
TASK_PREFIX = "devices.tasks."


def _serial_task(name: str) -> Any:
    """A bound task on the serial queue whose result a client polls."""
    return shared_task(
        name=TASK_PREFIX + name,
        queue=Queue.SERIAL,
        bind=True,
        ignore_result=False,
        max_retries=None,
    )


@_serial_task("refresh_info")
def refresh_info(self: Task, device_id: int, requested_at: float, attempt: int = 0) -> dict:
    return _run(self, device_id, "info", lambda: services.refresh_info(device_id, requested_at))


@_serial_task("sync_events")
def sync_events(self: Task, device_id: int, requested_at: float, attempt: int = 0) -> dict:
    return _run(self, device_id, "events", lambda: services.sync_events(device_id, requested_at))


@_serial_task("refresh_monitor")
def refresh_monitor(self: Task, device_id: int, requested_at: float, attempt: int = 0) -> dict:
    return _run(
        self, device_id, "monitor", lambda: services.refresh_monitor(device_id, requested_at)
    )


@_serial_task("fetch_waveform")
def fetch_waveform(
    self: Task, device_id: int, index: int, force: bool, requested_at: float, attempt: int = 0
) -> dict:
    def progress(done: int, total: int) -> None:
        self.update_state(state="PROGRESS", meta={"bytes_done": done, "bytes_total": total})

    return _run(
        self,
        device_id,
        f"waveform:{index}",
        lambda: services.fetch_waveform(device_id, index, force, progress),
    )


@_serial_task("set_monitoring")
def set_monitoring(
    self: Task, device_id: int, start: bool, requested_at: float, attempt: int = 0
) -> dict:
    flight = seismo_cache.command_flight("monitoring", start=start)
    return _run(self, device_id, flight, lambda: services.set_monitoring(device_id, start))


@_serial_task("write_config")
def write_config(
    self: Task, device_id: int, changes: dict, requested_at: float, attempt: int = 0
) -> dict:
    flight = seismo_cache.command_flight("config", changes=changes)
    return _run(self, device_id, flight, lambda: services.write_config(device_id, changes))


@_serial_task("erase_device")
def erase_device(self: Task, device_id: int, requested_at: float, attempt: int = 0) -> dict:
    flight = seismo_cache.command_flight("erase")
    return _run(self, device_id, flight, lambda: services.erase(device_id))
