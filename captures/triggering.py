"""One tick of an operation on its modem: the SNMP side of a PNM capture.

Order (reference §2.1, with the field lessons): sysDescr once per operation, walk the OFDM
channels, point the bulk upload at our TFTP receiver, then per channel record the expected
file, register it with the receiver, set FileName + FileEnable and poll MeasStatus
against a deadline. The file itself arrives at the receiver, which queues the staging task.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache

from captures import expectations, services
from captures.services import Tick
from devices.links import pnm
from devices.links.snmp import SnmpError, SnmpRejected, client

log = logging.getLogger(__name__)

LOCK_SLACK_S = 30


class ModemLocked(Exception):
    """Another capture holds this modem (a modem runs one PNM test at a time)."""


class NoChannels(Exception):
    """The modem has no (requested) OFDM downstream channel."""


@contextmanager
def modem_lock(modem_pk: int, channels_hint: int = 4) -> Iterator[None]:
    """A per-modem lock in the Django cache (``add`` is atomic); expires if we die."""
    key = f"pnm:modem-lock:{modem_pk}"
    token = secrets.token_hex(8)
    ttl = int(settings.PNM_MEASURE_DEADLINE_S * channels_hint + LOCK_SLACK_S)
    if not cache.add(key, token, timeout=ttl):
        raise ModemLocked(f"modem {modem_pk} is busy with another capture")
    try:
        yield
    finally:
        if cache.get(key) == token:
            cache.delete(key)


def run_tick(tick: Tick) -> int:
    """Trigger every channel of one tick; returns how many captures were started."""
    operation = tick.operation
    modem = operation.modem
    test = pnm.PnmTest(operation.test_type)
    target = modem.snmp_target(settings.PNM_SNMP_TIMEOUT_S, settings.PNM_SNMP_RETRIES)
    snmp = client()
    with modem_lock(modem.pk):
        if not operation.metadata.get("system_description"):
            description = pnm.read_system_description(snmp, target)
            services.record_system_description(operation, description)
        channels = _ofdm_channels(operation, snmp, target)
        if operation.channel_ids:
            wanted = set(operation.channel_ids)
            channels = [channel for channel in channels if channel.channel_id in wanted]
        if not channels:
            raise NoChannels(
                f"modem {modem.mac_address} has no OFDM downstream channel"
                + (f" among {operation.channel_ids}" if operation.channel_ids else "")
            )
        services.set_expected_channels(operation, len(channels))
        point_uploads_at_receiver(snmp, target)
        return sum(_capture_channel(tick, test, target, channel) for channel in channels)


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


def point_uploads_at_receiver(snmp, target) -> None:
    """Set the bulk destination unless the modem already has it: one GET instead of four
    SETs on every tick after the first."""
    address = ipaddress.ip_address(settings.PNM_TFTP_DEST_HOST)
    wanted = [
        1 if address.version == 4 else 2,
        address.packed,
        settings.PNM_TFTP_DEST_PATH.encode(),
        pnm.UPLOAD_AUTO,
    ]
    current = snmp.get(
        target,
        pnm.BULK_DEST_IP_TYPE,
        pnm.BULK_DEST_IP,
        pnm.BULK_DEST_PATH,
        pnm.BULK_UPLOAD_CONTROL,
    )
    if current != wanted:
        pnm.set_bulk_destination(
            snmp, target, settings.PNM_TFTP_DEST_HOST, settings.PNM_TFTP_DEST_PATH
        )


def _capture_channel(tick: Tick, test: pnm.PnmTest, target, channel: pnm.OfdmChannel) -> bool:
    operation = tick.operation
    modem = operation.modem
    epoch = int(time.time())
    capture = services.create_capture(
        operation,
        tick.number,
        channel.channel_id,
        channel.if_index,
        lambda offset: pnm.stored_file_name(
            test, modem.mac_address, channel.channel_id, epoch + offset
        ),
    )
    if capture is None:
        return False  # this (tick, channel) was triggered by an earlier delivery
    expectation = expectations.register(capture, modem, test)
    snmp = client()
    try:
        pnm.start_capture(snmp, target, test, channel.if_index, capture.file_name)
    except SnmpError as exc:
        # Not triggered (as far as we know): forget it, so a retry can trigger it afresh.
        expectations.forget(expectation)
        capture.delete()
        if isinstance(exc, SnmpRejected):
            services.update_metadata(operation, ofdm_channels=None)  # walk again next tick
        raise
    try:
        pnm.wait_sample_ready(
            snmp,
            target,
            test,
            channel.if_index,
            deadline_s=settings.PNM_MEASURE_DEADLINE_S,
            poll_s=settings.PNM_POLL_INTERVAL_S,
        )
    except (pnm.CaptureTimeout, pnm.CaptureFailed) as exc:
        expectations.forget(expectation)
        services.fail_capture(capture.pk, f"channel {channel.channel_id}: {exc}")
        return False
    return True
