"""One tick of an operation on its modem: the SNMP side of a PNM capture.

Order (reference §2.1, with the field lessons): sysDescr once per operation, walk the
channels of each test's scope (OFDM downstream, OFDMA upstream, the MAC-layer interface, or
index 0), point the bulk upload at our TFTP receiver, then per (test, channel) of the
tick's plan (``captures.plans``) record the expected files, register them with the
receiver, set the test's parameters, file name(s) and enable (``pnm.start_capture``) and
poll MeasStatus against a deadline. The files arrive at the receiver, which queues the
staging task.

The wait does not hold a worker: ``run_tick`` triggers the first (test, channel) and
returns a ``Measurement``; each ``poll`` (one GET, run by a short follow-up task) returns
the next step, the next trigger's ``Measurement`` once this one is over, or None when the
tick is done. The per-modem lock is a short lease (PNM_LEASE_TTL_S) taken before the first SET
and renewed by every poll until ``end_tick``: when a worker dies mid-measurement the lease
runs out within seconds, the modem is free for the next tick, and the sweeper settles the
tick the dead chain had in flight (``services.abandon_lost_ticks``). No pooled database
connection is held through an SNMP exchange (``core.connections.hand_back``): a silent
modem would keep it for its full timeout.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field, replace

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from captures import expectations, plans, services, storage
from captures.models import Capture, CaptureState, Operation
from captures.services import Tick
from core import connections, locks
from core.rows import row_keys
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
    """The modem has no (requested) channel of a test's scope."""


@dataclass(frozen=True)
class Measurement:
    """A triggered capture being waited for, and what its tick still has to do.

    Plain JSON fields: it travels as the argument of the follow-up poll tasks. ``step``
    numbers the polls of one trigger, so a poll delivered twice is run once.
    """

    operation_pk: int
    modem_pk: int
    tick: int
    final: bool
    lock: str  # the token of our per-modem lock (and of our CMTS slot)
    test: str  # the PnmTest triggered
    captures: list[int]  # the captures (files) of this trigger: pre-eq asks for two
    if_index: int
    channel_id: int
    expectations: list[dict]  # Expectation.to_dict() each: forgotten if the measurement fails
    started: float  # epoch seconds of the trigger: the deadlines count from here
    deadline_s: float  # how long the measurement may take
    remaining: list[list] = field(default_factory=list)  # [test, if_index, channel_id] after this
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
    """Set up the modem and trigger the first test and channel of one tick.

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
    description = None
    if not operation.metadata.get("system_description"):
        connections.hand_back()
        description = pnm.read_system_description(snmp, target)
    walked: dict[str, list[list[int]]] = {}
    available = {
        test: _wanted(operation, test, _channels(operation, test.scope, snmp, target, walked))
        for test in plans.operation_tests(operation)
    }
    planned = services.plan_slots(
        operation,
        {test: sorted(channels) for test, channels in available.items()},
        description=description,
        walked=walked,
    )
    plan = [
        [test.value, available[test][channel_id].if_index, channel_id]
        for test in plans.tick_tests(operation, tick.number)
        for channel_id in _planned_channels(test, planned)
        if channel_id in available[test]
    ]
    gone = sorted(
        {
            (slot_test, channel_id)
            for slot_test, channel_id in planned
            if not any(channel_id in available[test] for test in _tests_of(slot_test, available))
        }
    )
    if not planned or gone:
        raise NoChannels(_no_channels(operation, gone))
    token = lock_modem(modem.pk)
    measurement = None
    cmts_slot = ""
    try:
        cmts_slot = take_cmts_slot(modem.cmts, token)
        connections.hand_back()
        pnm.prepare_upload(snmp, target, settings.PNM_TFTP_DEST_HOST, settings.PNM_TFTP_DEST_PATH)
        measurement = _trigger_next(
            operation, tick.number, tick.final, token, plan, cmts_slot, ready_checked=True
        )
    finally:
        if measurement is None:
            unlock_modem(modem.pk, token, cmts_slot)
    return measurement


def _channels(
    operation, scope: pnm.Scope, snmp, target, walked: dict[str, list[list[int]]]
) -> list[pnm.Channel]:
    """The modem's channels of ``scope``, walked once per operation (like sysDescr) and
    walked again after a trigger was refused (an ifIndex may have changed). A walk's rows
    go into ``walked`` (by scope), which ``services.plan_slots`` records."""
    known = operation.metadata.get("channels", {}).get(scope.value) or walked.get(scope.value)
    if known:
        return [pnm.Channel(if_index, channel_id) for if_index, channel_id in known]
    connections.hand_back()
    found = pnm.channels(snmp, target, scope)
    walked[scope.value] = [[channel.if_index, channel.channel_id] for channel in found]
    return found


def _wanted(operation, test: pnm.PnmTest, found: list[pnm.Channel]) -> dict[int, pnm.Channel]:
    """``found`` by channel id, narrowed to the operation's ``channel_ids`` for tests that
    run per channel (a once-per-modem test has channel 0 only)."""
    by_id = {channel.channel_id: channel for channel in found}
    if operation.channel_ids and test.scope in PER_CHANNEL:
        wanted = set(operation.channel_ids)
        return {key: channel for key, channel in by_id.items() if key in wanted}
    return by_id


PER_CHANNEL = (pnm.Scope.DS_OFDM, pnm.Scope.US_OFDMA)


def _tests_of(slot_test: str, available: dict) -> list[pnm.PnmTest]:
    """The trigger tests (of this operation) whose files include ``slot_test``."""
    return [test for test in available if any(f.test_type == slot_test for f in test.files)]


def _planned_channels(test: pnm.PnmTest, planned: list[services.Slot]) -> list[int]:
    """The planned channels of ``test`` (its first file names the trigger's slots)."""
    first = test.files[0].test_type
    return [channel_id for slot_test, channel_id in planned if slot_test == first]


def _no_channels(operation, gone: list[services.Slot]) -> str:
    scopes = sorted({test.scope.value for test in plans.operation_tests(operation)})
    text = f"modem {operation.modem.mac_address} has no {' / '.join(scopes)} channel"
    if gone:
        return text + f" {[channel_id for _, channel_id in gone]} (planned, now gone)"
    if operation.channel_ids:
        return text + f" among {operation.channel_ids}"
    return text


def measure_deadline_s(test: pnm.PnmTest, parameters: dict) -> float:
    """How long a triggered measurement may take: PNM_MEASURE_DEADLINE_S, plus the time
    the MIB gives the CM for the test itself (a histogram's TimeOut, a FEC summary's 10
    minutes or 24 hours, a symbol capture's trigger timeout)."""
    return settings.PNM_MEASURE_DEADLINE_S + pnm.measure_time_s(test, parameters)


def _trigger_next(
    operation: Operation,
    tick: int,
    final: bool,
    token: str,
    plan: list[list],
    cmts_slot: str,
    *,
    ready_checked: bool = False,
) -> Measurement | None:
    """Trigger the first (test, channel) of ``plan`` not yet triggered in this tick; None
    if none.

    ``ready_checked``: CtlStatus was read ready just now (by ``prepare_upload``).
    """
    modem = operation.modem
    for position, (test_value, if_index, channel_id) in enumerate(plan):
        test = pnm.PnmTest(test_value)
        parameters = pnm.validate_parameters(test, operation.parameters.get(test.value))
        deadline_s = measure_deadline_s(test, parameters)
        epoch = int(time.time())

        def file_name(file_test: str, offset: int, c: int = channel_id, e: int = epoch) -> str:
            return pnm.stored_file_name(file_test, modem.mac_address, c, e + offset)

        captures = services.create_captures(
            operation, tick, test, channel_id, if_index, file_name, deadline_s
        )
        if captures is None:
            continue  # this (tick, test, channel) was triggered by an earlier delivery
        if test.spec.walked:
            _walk(operation, captures[0], parameters)
            continue
        expected = [expectations.register(capture, modem) for capture in captures]
        connections.hand_back()
        try:
            pnm.start_capture(
                client(),
                _target(modem),
                test,
                if_index,
                [capture.file_name for capture in captures],
                parameters=parameters,
                check_ready=not ready_checked,
            )
        except SnmpError as exc:
            # Not triggered (as far as we know): forget it, so a retry can trigger it afresh.
            for expectation in expected:
                expectations.forget(expectation)
            Capture.objects.filter(pk__in=[capture.pk for capture in captures]).delete()
            if isinstance(exc, SnmpRejected):
                services.update_metadata(operation, channels=None)  # walk again next tick
            raise
        services.captures_triggered(captures, lease=token)
        # The measurement starts now; a lease lost during a slow setup shows at the first poll.
        _renew_leases(modem.pk, token, cmts_slot)
        return Measurement(
            operation_pk=operation.pk,
            modem_pk=modem.pk,
            tick=tick,
            final=final,
            lock=token,
            test=test.value,
            captures=[capture.pk for capture in captures],
            if_index=if_index,
            channel_id=channel_id,
            expectations=[expectation.to_dict() for expectation in expected],
            started=time.time(),
            deadline_s=deadline_s,
            remaining=plan[position + 1 :],
            cmts_slot=cmts_slot,
        )
    return None


def _walk(operation: Operation, capture: Capture, parameters: dict) -> None:
    """A test read over SNMP, not uploaded (the SNMP-only spectrum): its bytes go to the
    spool and on to staging exactly as a received upload does."""
    connections.hand_back()
    try:
        data = pnm.spectrum_amplitude_walk(client(), _target(operation.modem), parameters)
    except SnmpError:
        capture.delete()  # not measured: a retry measures afresh
        raise
    services.captures_triggered([capture])
    path = storage.usable_spool_dir() / capture.file_name
    path.write_bytes(data)
    if services.mark_uploaded({capture.pk: str(path)}):
        transaction.on_commit(
            lambda: current_app.send_task(STAGE_TASK, args=[[capture.pk]], ignore_result=True)
        )


STAGE_TASK = "captures.tasks.stage_captures"


def claim_step(measurement: Measurement) -> bool:
    """True once per (trigger, step): a poll task delivered twice does its work once."""
    key = f"pnm:poll:{measurement.captures[0]}:{measurement.step}"
    return cache.add(key, 1, timeout=int(measurement.deadline_s) + 60)


def poll(measurement: Measurement) -> Measurement | None:
    """One MeasStatus GET of a triggered test, judged by ``pnm.judge_poll``.

    Returns the next step: this trigger again (not ready yet), the next (test, channel)'s
    measurement (this one ended: ready, failed, timed out, or its files already came), or
    None when the tick is over. SNMP errors propagate (the task retries or counts them).
    Raises ``LeaseLost`` when the modem lease ran out: nothing more is triggered.
    """
    if not _renew_leases(measurement.modem_pk, measurement.lock, measurement.cmts_slot):
        raise LeaseLost(
            f"modem {measurement.modem_pk}: its lease ran out before poll {measurement.step}"
        )
    pending = row_keys(Capture, {"id": measurement.captures, "state": CaptureState.PENDING})
    if not pending and not measurement.remaining:
        return None  # the usual end: the files came, and it was the tick's last trigger
    operation = services.running_operation(measurement.operation_pk)
    if operation is None:
        return None  # stopped, failed or finished meanwhile: nothing more to trigger
    if pending:
        test = pnm.PnmTest(measurement.test)
        connections.hand_back()
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
                deadline_s=measurement.deadline_s,
                poll_s=settings.PNM_POLL_INTERVAL_S,
            )
        except (pnm.CaptureTimeout, pnm.CaptureFailed) as exc:
            for expectation in measurement.expectations:
                expectations.forget(Expectation.from_dict(expectation))
            for capture_pk in pending:
                services.fail_capture(
                    capture_pk,
                    f"channel {measurement.channel_id}: {exc}",
                    type(exc).__name__,
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
