"""One tick of an operation on its modem: the SNMP side of a PNM capture.

Order (reference §2.1, with the field lessons): sysDescr once per operation, walk the OFDM
channels, point the bulk upload at our TFTP receiver, then per channel record the expected
file, register it with the receiver, set FileName + FileEnable and poll MeasStatus
against a deadline. The file itself arrives at the receiver, which queues the staging task.

The wait does not hold a worker: ``run_tick`` triggers the first channel and returns a
``Measurement``; each ``poll`` (one GET, run by a short follow-up task) returns the next
step, the next channel's ``Measurement`` once this one is over, or None when the tick is
done. The per-modem lock is a short lease (PNM_LEASE_TTL_S) taken before the first SET
and renewed by every poll until ``end_tick``: when a worker dies mid-measurement the lease
runs out within seconds, the modem is free for the next tick, and the sweeper settles the
tick the dead chain had in flight (``services.abandon_lost_ticks``).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.core.cache import cache

from captures import expectations, services
from captures.models import Capture, CaptureState, Operation, OperationState
from captures.services import Tick
from core import locks
from devices.links import pnm
from devices.links.snmp import SnmpError, SnmpRejected, SnmpTarget, client
from devices.links.tftp import Expectation
from devices.models import CableModem

log = logging.getLogger(__name__)


class ModemLocked(Exception):
    """Another capture holds this modem (a modem runs one PNM test at a time)."""


class CmtsFull(Exception):
    """The modem's CMTS already has its cap of captures in flight (PNM_MAX_IN_FLIGHT_PER_CMTS)."""


class LeaseLost(Exception):
    """A poll chain's modem lease ran out (its worker stalled or died): the chain stops and
    the sweeper settles its tick."""


class NoChannels(Exception):
    """The modem has no (requested) OFDM downstream channel."""


@dataclass(frozen=True)
class Measurement:
    """A triggered capture being waited for, and what its tick still has to do.

    Plain JSON fields: it travels as the argument of the follow-up poll tasks. ``step``
    numbers the polls of one capture, so a poll delivered twice is run once.
    """

    operation_pk: int
    modem_pk: int
    tick: int
    final: bool
    lock: str  # the token of our per-modem lock (and of our CMTS slot)
    capture_pk: int
    if_index: int
    channel_id: int
    expectation: dict  # Expectation.to_dict(): forgotten again if the measurement fails
    started: float  # epoch seconds of the trigger: the deadlines count from here
    remaining: list[list[int]] = field(default_factory=list)  # [if_index, channel_id] after this
    seen_running: bool = False
    step: int = 0
    retries: int = 0  # transient SNMP errors in a row on this capture's polls
    cmts_slot: str = ""  # the lease key of the CMTS slot this tick holds ("": uncapped)


def _lease_ttl() -> float:
    """A dead chain holds its modem at most this long."""
    return float(settings.PNM_LEASE_TTL_S)


def lock_modem(modem_pk: int) -> str:
    """Take the per-modem lease (``core.locks``); its token, which travels in the
    measurement so the poll tasks can renew and release it."""
    lease = locks.acquire(services.modem_lock_key(modem_pk), _lease_ttl())
    if lease is None:
        raise ModemLocked(f"modem {modem_pk} is busy with another capture")
    return lease.token


def take_cmts_slot(cmts: str, token: str) -> str:
    """One of the ``PNM_MAX_IN_FLIGHT_PER_CMTS`` slots of ``cmts``, taken under the modem
    lock's token: its lease key, or "" when the modem has no CMTS or the cap is off.

    A slot is a lease (``core.locks``) like the modem lock, held and freed with it, so a dead
    worker's slot frees itself when the lease runs out. Raises ``CmtsFull`` when every slot
    is held: the tick is then missed, never queued.
    """
    cap = settings.PNM_MAX_IN_FLIGHT_PER_CMTS
    if not cmts or cap == 0:
        return ""
    first = secrets.randbelow(cap)  # spreads the probes over the slots
    for offset in range(cap):
        key = f"pnm:cmts-slot:{cmts}:{(first + offset) % cap}"
        if locks.acquire(key, _lease_ttl(), token=token) is not None:
            return key
    raise CmtsFull(f"CMTS {cmts!r} has {cap} captures in flight")


def _leases(modem_pk: int, token: str, cmts_slot: str) -> list[locks.Lease]:
    keys = [services.modem_lock_key(modem_pk), *([cmts_slot] if cmts_slot else [])]
    return [locks.attach(key, token, _lease_ttl()) for key in keys]


def unlock_modem(modem_pk: int, token: str, cmts_slot: str = "") -> None:
    """Release the modem lock (and CMTS slot) if still ours (they may have expired and
    been taken since)."""
    for lease in _leases(modem_pk, token, cmts_slot):
        lease.release()


def _renew_leases(modem_pk: int, token: str, cmts_slot: str) -> bool:
    """Another PNM_LEASE_TTL_S for the modem lease and CMTS slot; False when the modem
    lease is no longer ours (it ran out: the sweeper owns the tick now)."""
    modem_lease, *slot = _leases(modem_pk, token, cmts_slot)
    if not modem_lease.renew():
        return False
    for lease in slot:
        lease.renew()
    return True


def _target(modem: CableModem) -> SnmpTarget:
    return modem.snmp_target(settings.PNM_SNMP_TIMEOUT_S, settings.PNM_SNMP_RETRIES)


def run_tick(tick: Tick) -> Measurement | None:
    """Set up the modem and trigger the first channel of one tick.

    The channels are read (and planned, on the first tick) before the per-modem lock is
    taken: reads do not disturb another capture, and a skipped tick knows its channels.
    Returns the measurement to poll (the lock is then held until ``end_tick``), or None
    when no capture was started (the lock is released here). Raises ``ModemLocked`` when
    another capture holds the modem.
    """
    operation = tick.operation
    modem = operation.modem
    target = _target(modem)
    snmp = client()
    if not operation.metadata.get("system_description"):
        description = pnm.read_system_description(snmp, target)
        services.record_system_description(operation, description)
    available = {channel.channel_id: channel for channel in _ofdm_channels(operation, snmp, target)}
    if operation.channel_ids:
        wanted = set(operation.channel_ids)
        available = {key: channel for key, channel in available.items() if key in wanted}
    planned = services.plan_channels(operation, sorted(available))
    gone = [channel_id for channel_id in planned if channel_id not in available]
    if not planned or gone:
        raise NoChannels(
            f"modem {modem.mac_address} has no OFDM downstream channel"
            + (f" {gone}" if gone else "")
            + (f" among {operation.channel_ids}" if operation.channel_ids and not gone else "")
        )
    token = lock_modem(modem.pk)
    measurement = None
    cmts_slot = ""
    try:
        cmts_slot = take_cmts_slot(modem.cmts, token)
        pnm.prepare_upload(snmp, target, settings.PNM_TFTP_DEST_HOST, settings.PNM_TFTP_DEST_PATH)
        plan = [[available[channel_id].if_index, channel_id] for channel_id in planned]
        measurement = _trigger_next(
            operation, tick.number, tick.final, token, plan, cmts_slot, ready_checked=True
        )
    finally:
        if measurement is None:
            unlock_modem(modem.pk, token, cmts_slot)
    if measurement is not None:
        services.tick_in_flight(operation.pk, tick.number, token)
    return measurement


def _ofdm_channels(operation, snmp, target) -> list[pnm.OfdmChannel]:
    """The modem's OFDM channels, walked once per operation (like sysDescr) and walked
    again after a trigger was refused (an ifIndex may have changed)."""
    known = operation.metadata.get("ofdm_channels")
    if known:
        return [pnm.OfdmChannel(if_index, channel_id) for if_index, channel_id in known]
    channels = pnm.ofdm_channels(snmp, target)
    services.update_metadata(
        operation, ofdm_channels=[[c.if_index, c.channel_id] for c in channels]
    )
    return channels


def _trigger_next(
    operation: Operation,
    tick: int,
    final: bool,
    token: str,
    plan: list[list[int]],
    cmts_slot: str,
    *,
    ready_checked: bool = False,
) -> Measurement | None:
    """Trigger the first channel of ``plan`` not yet triggered in this tick; None if none.

    ``ready_checked``: CtlStatus was read ready just now (by ``prepare_upload``).
    """
    modem = operation.modem
    test = pnm.PnmTest(operation.test_type)
    for position, (if_index, channel_id) in enumerate(plan):
        epoch = int(time.time())

        def file_name(offset: int, c: int = channel_id, e: int = epoch) -> str:
            return pnm.stored_file_name(test, modem.mac_address, c, e + offset)

        capture = services.create_capture(operation, tick, channel_id, if_index, file_name)
        if capture is None:
            continue  # this (tick, channel) was triggered by an earlier delivery
        expectation = expectations.register(capture, modem, test)
        try:
            pnm.start_capture(
                client(),
                _target(modem),
                test,
                if_index,
                capture.file_name,
                check_ready=not ready_checked,
            )
        except SnmpError as exc:
            # Not triggered (as far as we know): forget it, so a retry can trigger it afresh.
            expectations.forget(expectation)
            capture.delete()
            if isinstance(exc, SnmpRejected):
                services.update_metadata(operation, ofdm_channels=None)  # walk again next tick
            raise
        services.capture_triggered(capture)
        # The measurement starts now; a lease lost during a slow setup shows at the first poll.
        _renew_leases(modem.pk, token, cmts_slot)
        return Measurement(
            operation_pk=operation.pk,
            modem_pk=modem.pk,
            tick=tick,
            final=final,
            lock=token,
            capture_pk=capture.pk,
            if_index=if_index,
            channel_id=channel_id,
            expectation=expectation.to_dict(),
            started=time.time(),
            remaining=plan[position + 1 :],
            cmts_slot=cmts_slot,
        )
    return None


def claim_step(measurement: Measurement) -> bool:
    """True once per (capture, step): a poll task delivered twice does its work once."""
    key = f"pnm:poll:{measurement.capture_pk}:{measurement.step}"
    return cache.add(key, 1, timeout=int(settings.PNM_MEASURE_DEADLINE_S) + 60)


def poll(measurement: Measurement) -> Measurement | None:
    """One MeasStatus GET of a triggered capture, judged by ``pnm.judge_poll``.

    Returns the next step: this capture again (not ready yet), the next channel's
    measurement (this one ended: ready, failed, timed out, or its file already came), or
    None when the tick is over. SNMP errors propagate (the task retries or counts them).
    Raises ``LeaseLost`` when the modem lease ran out: nothing more is triggered.
    """
    if not _renew_leases(measurement.modem_pk, measurement.lock, measurement.cmts_slot):
        raise LeaseLost(
            f"modem {measurement.modem_pk}: its lease ran out before poll {measurement.step}"
        )
    states = services.one_or_none(
        Capture.objects.filter(pk=measurement.capture_pk).values_list("state", "operation__state")
    )
    if states is None or states[1] != OperationState.RUNNING:
        return None  # stopped, failed or finished meanwhile: nothing more to trigger
    if states[0] != CaptureState.PENDING and not measurement.remaining:
        return None  # the usual end: the file came, and it was the tick's last channel
    capture = services.one_or_none(
        Capture.objects.select_related("operation__modem").filter(pk=measurement.capture_pk)
    )
    if capture is None or capture.operation.state != OperationState.RUNNING:
        return None
    operation = capture.operation
    if capture.state == CaptureState.PENDING:
        test = pnm.PnmTest(operation.test_type)
        value, enable = pnm.read_meas_status(
            client(), _target(operation.modem), test, measurement.if_index
        )
        try:
            verdict = pnm.judge_poll(
                test,
                measurement.if_index,
                value,
                enable,
                seen_running=measurement.seen_running,
                elapsed_s=time.time() - measurement.started,
                deadline_s=settings.PNM_MEASURE_DEADLINE_S,
                poll_s=settings.PNM_POLL_INTERVAL_S,
            )
        except (pnm.CaptureTimeout, pnm.CaptureFailed) as exc:
            expectations.forget(Expectation.from_dict(measurement.expectation))
            services.fail_capture(
                capture.pk, f"channel {measurement.channel_id}: {exc}", type(exc).__name__
            )
        else:
            if not verdict.ready:
                return replace(
                    measurement,
                    seen_running=verdict.seen_running,
                    step=measurement.step + 1,
                    retries=0,
                )
    return _trigger_next(
        operation,
        measurement.tick,
        measurement.final,
        measurement.lock,
        measurement.remaining,
        measurement.cmts_slot,
    )


def retry_step(measurement: Measurement) -> Measurement:
    """The same poll again after a transient error (a new step, so it is not a duplicate)."""
    return replace(measurement, step=measurement.step + 1, retries=measurement.retries + 1)


def end_tick(measurement: Measurement) -> None:
    """The tick's measurements are over: free the modem and its CMTS slot, settle a final
    tick."""
    unlock_modem(measurement.modem_pk, measurement.lock, measurement.cmts_slot)
    services.tick_over(measurement.operation_pk, measurement.lock, final=measurement.final)
