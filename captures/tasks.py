"""Celery tasks of the PNM pipeline: thin wrappers around services, ids in.

Queues: trigger_* -> snmp, stage_* -> ingest, dispatch_* and sweep_* -> maintenance
(``queue=`` below).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict

from celery import current_app, shared_task
from celery.signals import worker_process_shutdown, worker_shutdown
from django.conf import settings
from django.db import close_old_connections

from captures import arrivals, dispatch, services, staging, storage, triggering
from config.queues import Queue
from core import connections
from core.retry import backoff_s
from devices.links import pnm, snmp
from devices.models import CableModem

log = logging.getLogger(__name__)

# Worth another try soon: the modem did not answer, or was busy.
TRANSIENT = (snmp.SnmpTimeout, pnm.ModemBusy)
TRIGGER_RETRIES = 2
STAGE_RETRIES = 5
RESTAGE_BATCH = 100  # captures per staging task the sweeper sends


@shared_task(
    name="captures.tasks.trigger_capture",
    queue=Queue.SNMP,
    bind=True,
    acks_late=True,
    max_retries=TRIGGER_RETRIES,
)
def trigger_capture(
    self,
    operation_pk: int,
    tick: int | None = None,
    last_error: str = "",
    error_kind: str = "",
) -> int:
    """Run one tick of an operation alone (a retry, or a final tick the sweeper resends;
    the dispatcher's ticks come in ``trigger_ticks``). Returns the captures triggered here.

    Without ``tick`` the due tick is claimed here. A retry carries its tick and the error
    that caused it: if the operation has moved on to a later tick meanwhile, the failure is
    still counted.
    """

    def retry(kwargs: dict, countdown: float, exc: Exception) -> None:
        raise self.retry(
            args=[operation_pk],
            kwargs=kwargs,
            countdown=countdown,
            expires=None,  # a "stale tick" expiry must not drop the retry
            exc=exc,
        ) from exc

    if tick is None:
        claimed = services.claim_tick(operation_pk)
    else:
        claimed = services.reclaim_ticks({operation_pk: tick}).get(operation_pk)
        if claimed is None and last_error:  # the operation moved on during the backoff
            services.tick_failed(operation_pk, last_error, error_kind or "Unknown", tick=tick)
    if claimed is None:
        return 0
    return run_claimed(claimed, retries=self.request.retries, retry=retry)


@shared_task(name="captures.tasks.trigger_ticks", queue=Queue.SNMP, acks_late=True)
def trigger_ticks(ticks: list[list]) -> int:
    """Run the claimed ticks of one message side by side, ``[operation pk, tick, due]``
    each. Returns the captures triggered.

    ``due`` is the epoch second a dispatched tick was due: one that waited in the queue
    past its grace (``services.tick_grace_s``), or was overtaken by a later tick, is
    counted missed, not run late. A single capture's one tick comes without (None) and
    waits its turn. The message's operations are read in one query; each tick then runs on
    a thread of this process's tick pool (``PNM_TICK_THREADS``), so a modem that does not
    answer holds up no other tick. The message is acknowledged once every tick has run or
    handed on to its polls, as a lone trigger's is; a tick to retry goes on alone
    (``trigger_capture``).
    """
    claimed = services.reclaim_ticks({operation_pk: number for operation_pk, number, _ in ticks})
    runnable = []
    for operation_pk, number, due in ticks:
        tick = claimed.get(operation_pk)
        if tick is None:
            if due is not None:  # a later tick was dispatched before this one ran
                services.tick_lapsed(operation_pk, number, services.QUEUED_TOO_LONG)
        elif due is not None and time.time() - due > services.tick_grace_s(tick.operation):
            services.claimed_tick_lapsed(tick, services.QUEUED_TOO_LONG)
        else:
            runnable.append(tick)
    if len(runnable) <= 1:
        return sum(_run_listed(tick) for tick in runnable)
    connections.hand_back()  # the tick threads need the pool's connections, not this thread
    futures = [tick_threads().submit(_on_tick_thread, tick) for tick in runnable]
    wait(futures)
    for future in futures:
        if (bug := future.exception()) is not None:
            raise bug  # counted on its operation; every other tick has run
    return sum(future.result() for future in futures)


def _run_listed(tick: services.Tick) -> int:
    def retry(kwargs: dict, countdown: float, exc: Exception) -> None:
        current_app.send_task(  # as its first retry: Celery counts it in the message
            trigger_capture.name,
            args=[tick.operation.pk],
            kwargs=kwargs,
            countdown=countdown,
            retries=1,
            ignore_result=True,
        )

    return run_claimed(tick, retries=0, retry=retry)


def _on_tick_thread(tick: services.Tick) -> int:
    try:
        return _run_listed(tick)
    finally:
        close_old_connections()  # as Celery does after each task: back to the pool, or closed


_tick_pool: ThreadPoolExecutor | None = None
_tick_pool_lock = threading.Lock()


def tick_threads() -> ThreadPoolExecutor:
    """This process's pool of tick threads, made on first use (after a prefork fork)."""
    global _tick_pool
    with _tick_pool_lock:
        if _tick_pool is None:
            _tick_pool = ThreadPoolExecutor(settings.PNM_TICK_THREADS, thread_name_prefix="tick")
        return _tick_pool


def stop_tick_threads() -> None:
    """End the tick threads (idle by then: a warm shutdown waits for the tasks that use
    them); their database connections close with them."""
    global _tick_pool
    with _tick_pool_lock:
        if _tick_pool is not None:
            _tick_pool.shutdown(wait=True)
            _tick_pool = None


def run_claimed(
    claimed: services.Tick,
    *,
    retries: int,
    retry: Callable[[dict, float, Exception], None],
) -> int:
    """Run a claimed tick; the captures triggered (0 or 1). Only the setup and the first
    channel's SETs run here, then the wait for the file (``_await_upload``) or a chain of
    ``trigger_poll`` tasks, so a worker slot is not held for the measurement. A transient
    SNMP error calls ``retry`` (the tick's kwargs, a backoff, the error) until
    TRIGGER_RETRIES, then counts the tick failed."""
    operation_pk = claimed.operation.pk
    measurement = None
    retrying = False
    try:
        measurement = triggering.run_tick(claimed)
    except triggering.ModemLocked:
        # Another capture (often our own previous tick) holds the modem: skip this tick,
        # counted as skipped, not as a modem failure.
        services.tick_skipped(claimed.operation, claimed.number)
    except triggering.CmtsFull:
        # Admission control: beyond the CMTS's cap a tick is counted missed, not queued.
        services.tick_missed(claimed.operation, claimed.number, services.CMTS_FULL)
    except TRANSIENT as exc:
        reason = _describe(exc, claimed.operation.modem)
        kind = type(exc).__name__
        if retries < TRIGGER_RETRIES:
            retrying = True
            retry(
                {"tick": claimed.number, "last_error": reason, "error_kind": kind},
                backoff_s(retries, 0.5, maximum_s=10),
                exc,
            )
            return 0
        services.tick_failed(operation_pk, reason, kind, tick=claimed.number)
    except (snmp.SnmpError, triggering.NoChannels) as exc:
        services.tick_failed(
            operation_pk,
            _describe(exc, claimed.operation.modem),
            type(exc).__name__,
            tick=claimed.number,
        )
    except Exception as exc:  # a bug: count it on the operation, keep the traceback
        services.tick_failed(
            operation_pk, f"internal error: {exc!r}", type(exc).__name__, tick=claimed.number
        )
        raise
    finally:
        # With a measurement under way, its poll chain settles the final tick.
        if claimed.final and measurement is None and not retrying:
            services.final_tick_settled(operation_pk)
    if measurement is None:
        return 0
    _await_upload(measurement)
    return 1


@shared_task(name="captures.tasks.trigger_poll", queue=Queue.SNMP, bind=True, acks_late=True)
def trigger_poll(self, measurement: dict) -> str:
    """One MeasStatus poll of a triggered capture, then the next step of its tick.

    Transient SNMP errors retry the poll (same deadline) with backoff and jitter up to
    TRIGGER_RETRIES times, then count as a failed tick, as in ``trigger_capture``.
    """
    current = triggering.Measurement(**measurement)
    if not triggering.claim_step(current):
        return "duplicate"
    try:
        following = triggering.poll(current)
    except triggering.LeaseLost as exc:
        log.warning("operation pk=%s tick %s: %s", current.operation_pk, current.tick, exc)
        return "lease lost"  # the sweeper settles the tick (services.abandon_lost_ticks)
    except TRANSIENT as exc:
        if current.retries < TRIGGER_RETRIES:
            countdown = backoff_s(current.retries, 0.5, maximum_s=10)
            _poll_later(triggering.retry_step(current), countdown)
            return "retrying"
        following = None
        _poll_failed(current, exc)
    except snmp.SnmpError as exc:
        following = None
        _poll_failed(current, exc)
    except Exception as exc:  # a bug: count it, free the modem, keep the traceback
        services.tick_failed(
            current.operation_pk,
            f"internal error: {exc!r}",
            type(exc).__name__,
            tick=current.tick,
        )
        triggering.end_tick(current)
        raise
    if following is None:
        triggering.end_tick(current)
        return "done"
    _poll_later(following)
    return "polling"


def _poll_failed(current: triggering.Measurement, exc: Exception) -> None:
    """The tick's channels not triggered yet fail (the one being polled expires on its
    deadline, unless its file still comes)."""
    modem = CableModem.objects.get(pk=current.modem_pk)
    services.tick_failed(
        current.operation_pk, _describe(exc, modem), type(exc).__name__, tick=current.tick
    )


def _await_upload(measurement: triggering.Measurement) -> None:
    """End the tick here if its last file arrives within PNM_ARRIVAL_WAIT_S
    (``captures.arrivals``: threads workers only, one-file triggers); otherwise poll as
    usual: at once when the file came and a channel is left, or when the wait ran past a
    poll interval, else once the interval is up."""
    if not arrivals.enabled() or len(measurement.captures) != 1:
        _poll_later(measurement)
        return
    started = time.monotonic()
    connections.hand_back()
    arrived = arrivals.wait(measurement.captures[0], settings.PNM_ARRIVAL_WAIT_S)
    if arrived and not measurement.remaining:
        triggering.end_tick(measurement)  # the file is in and no channel is left
        return
    waited = time.monotonic() - started
    _poll_later(measurement, 0.0 if arrived else max(0.0, settings.PNM_POLL_INTERVAL_S - waited))


def _poll_later(measurement: triggering.Measurement, countdown: float | None = None) -> None:
    """Queue the next poll one poll interval (or a backoff) from now."""
    trigger_poll.apply_async(
        args=(asdict(measurement),),
        countdown=settings.PNM_POLL_INTERVAL_S if countdown is None else countdown,
    )


def _describe(exc: Exception, modem: CableModem) -> str:
    where = f"modem {modem.mac_address} at {modem.ip_address}:{modem.snmp_port}"
    if isinstance(exc, snmp.SnmpTimeout):
        return f"{where} did not answer SNMP (timeout; is it up, is the community right?)"
    if isinstance(exc, snmp.SnmpRejected):
        return f"{where} refused SNMP: {exc}"
    return f"{where}: {exc}"


@shared_task(
    name="captures.tasks.stage_captures",
    queue=Queue.INGEST,
    bind=True,
    acks_late=True,
    max_retries=STAGE_RETRIES,
)
def stage_captures(self, capture_pks: list[int]) -> int:
    """Compress, store and record received files (a batch the receiver forwarded
    together); storage errors retry, files kept. Returns the transactions recorded."""
    try:
        records = staging.stage_captures(capture_pks)
    except storage.StorageUnavailable as exc:
        log.error("captures %s: %s", capture_pks, exc)
        raise self.retry(
            countdown=backoff_s(self.request.retries, 1.0, maximum_s=60), exc=exc
        ) from exc
    return len(records)


@shared_task(name="captures.tasks.dispatch_ticks", queue=Queue.MAINTENANCE)
def dispatch_ticks() -> dict:
    """Periodic, every second (seeded by a data migration): send the due ticks."""
    passed = dispatch.dispatch_due_ticks()
    return asdict(passed) if passed else {"skipped": "another pass is under way"}


@shared_task(name="captures.tasks.sweep_operations", queue=Queue.MAINTENANCE)
def sweep_operations() -> dict:
    """Periodic (seeded by a data migration): finish, resume or expire what was lost."""
    result = services.sweep()
    for operation_pk in result.late_final:
        trigger_capture.delay(operation_pk)
    for start in range(0, len(result.restage), RESTAGE_BATCH):
        stage_captures.delay(result.restage[start : start + RESTAGE_BATCH])
    return {
        "abandoned": result.abandoned,
        "expired": result.expired,
        "rescheduled": result.rescheduled,
        "completed": result.completed,
        "late_final": len(result.late_final),
        "restaged": len(result.restage),
    }


@worker_process_shutdown.connect  # prefork children
@worker_shutdown.connect  # solo and threads pools: the main process holds the client
def close_snmp_client(**_kwargs) -> None:
    """Close this process's SNMP engine and loop (one per worker process), after its tick
    threads."""
    stop_tick_threads()
    snmp.client().close()
