"""Seismograph work done inside a link session, and the durable cache writes it makes.

Called only from Celery tasks on the ``serial`` queue. Every function takes the device's
session lock first (one link session per unit, as the hardware requires), re-checks whether
a request has been answered meanwhile (so joined or duplicated tasks never dial twice),
talks to the unit, then writes PostgreSQL in one transaction at the end: a session that
fails half-way writes nothing, so a partial download is never cached.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

import zstandard
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from seismographs import cache as seismo_cache
from seismographs.models import SeismoEvent, Seismograph, SeismoWaveform
from seismographs.protocol.client import MiniMateClient
from seismographs.protocol.errors import NoSuchEvent, ProtocolError, SeismoLinkError
from seismographs.protocol.records import DeviceConfig, EventHeader, ProjectInfo, Waveform

if TYPE_CHECKING:
    from simulators.seismograph import SeismographSimulator

log = logging.getLogger(__name__)
T = TypeVar("T")
WAVEFORM_ENCODING = "int16be-interleaved"
Progress = Callable[[int, int], None]


class DeviceBusy(Exception):
    """Another worker holds this unit's session lock; try again shortly."""


def _session(device_id: int, work: Callable[[Seismograph, MiniMateClient], T]) -> T:
    """Run ``work`` with the unit's lock held and a fresh link open; learn the serial."""
    with seismo_cache.device_lock(device_id) as owned:
        if not owned:
            raise DeviceBusy(device_id)
        device = Seismograph.objects.get(pk=device_id)
        client = MiniMateClient.from_conn_key(
            device.conn_key,
            timeout_s=device.link_timeout_s or settings.SEISMO_LINK_TIMEOUT_S,
            chunk_timeout_s=device.link_timeout_s or settings.SEISMO_CHUNK_TIMEOUT_S,
            idle_gap_s=device.idle_gap_s or settings.SEISMO_IDLE_GAP_S,
        )
        with client:
            if not device.serial_number:
                device.serial_number = client.identify().serial
                device.save(update_fields=["serial_number"])
            result = work(device, client)
        _note_contact(device)
        return result


def _note_contact(device: Seismograph) -> None:
    seismo_cache.record_success(device.pk)
    Seismograph.objects.filter(pk=device.pk).update(
        last_contact_at=timezone.now(), offline=False, last_error="", last_error_kind=""
    )


def error_payload(exc: SeismoLinkError) -> dict[str, Any]:
    return {"kind": exc.kind, "message": str(exc) or exc.__class__.__name__}


def note_failure(device_id: int, exc: SeismoLinkError) -> None:
    """A refresh gave up: negative-cache it, count it, mark the unit offline at the limit."""
    error = {**error_payload(exc), "at": timezone.now().isoformat()}
    failures = seismo_cache.record_failure(device_id, error)
    offline = failures >= settings.SEISMO_OFFLINE_AFTER
    Seismograph.objects.filter(pk=device_id).update(
        last_error=error["message"],
        last_error_kind=error["kind"],
        last_error_at=timezone.now(),
        offline=offline,
    )
    log.warning("seismograph %s: %s (%d in a row)", device_id, error["message"], failures)


def _answered_since(value: dt.datetime | None, requested_at: float) -> bool:
    return value is not None and value.timestamp() >= requested_at


# --- device info --------------------------------------------------------------------------


def config_json(config: DeviceConfig) -> dict[str, Any]:
    return asdict(config)


def refresh_info(device_id: int, requested_at: float) -> bool:
    """Read identity + compliance config. Returns False when a newer read made it moot."""
    device = Seismograph.objects.get(pk=device_id)
    if not device.config_dirty and _answered_since(device.info_fetched_at, requested_at):
        return False

    def work(device: Seismograph, client: MiniMateClient) -> None:
        identity = client.identify()
        config = client.read_config()
        info = {
            "serial": identity.serial,
            "firmware": identity.firmware,
            "model": identity.model,
            "calibration_date": identity.calibration_date.isoformat(),
            "config": config_json(config),
        }
        with transaction.atomic():
            if device.serial_number and device.serial_number != identity.serial:
                log.warning(
                    "%s: unit changed %s -> %s", device, device.serial_number, identity.serial
                )
                _flush_derived(device)
            Seismograph.objects.filter(pk=device.pk).update(
                serial_number=identity.serial,
                info=info,
                info_fetched_at=timezone.now(),
                config_dirty=False,
            )

    _session(device_id, work)
    return True


def write_config(device_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply validated changes on top of the unit's current config; dirty the cache first,
    because a write that fails half-way leaves the unit's config unknown."""
    Seismograph.objects.filter(pk=device_id).update(config_dirty=True, events_stale=True)

    def work(device: Seismograph, client: MiniMateClient) -> dict[str, Any]:
        written = client.write_config(merge_config(client.read_config(), changes))
        Seismograph.objects.filter(pk=device.pk).update(config_dirty=True, events_stale=True)
        return config_json(written)

    return _session(device_id, work)


def merge_config(current: DeviceConfig, changes: dict[str, Any]) -> DeviceConfig:
    project_fields = {f: changes[f] for f in ProjectInfo.__dataclass_fields__ if f in changes}
    numbers = {f: v for f, v in changes.items() if f in DeviceConfig.__dataclass_fields__}
    numbers.pop("project", None)
    numbers.pop("revision", None)
    project = ProjectInfo(**{**asdict(current.project), **project_fields})
    return DeviceConfig(**{**asdict(current), **numbers, "project": project})


# --- events -----------------------------------------------------------------------------------


def header_json(header: EventHeader) -> dict[str, Any]:
    data = asdict(header)
    data["timestamp"] = header.timestamp.isoformat()
    return data


def _stamp(header: EventHeader) -> tuple[str, dt.datetime]:
    return header.waveform_key, header.timestamp


def _flush_derived(device: Seismograph) -> None:
    """Forget which stored event sits at which index; the rows stay as history."""
    SeismoEvent.objects.filter(device=device, device_index__isnull=False).update(device_index=None)
    Seismograph.objects.filter(pk=device.pk).update(event_count=None, events_checked_at=None)
    log.info("%s: derived cache flushed", device)


def _place(device: Seismograph, header: EventHeader) -> SeismoEvent:
    """Put one header at its index, reusing the stored row when the identity is known."""
    SeismoEvent.objects.filter(device=device, device_index=header.index).exclude(
        waveform_key=header.waveform_key, timestamp=header.timestamp
    ).update(device_index=None)
    event, _ = SeismoEvent.objects.update_or_create(
        device=device,
        waveform_key=header.waveform_key,
        timestamp=header.timestamp,
        defaults={
            "device_index": header.index,
            "serial_number": device.serial_number,
            "record_type": header.record_type,
            "sample_rate": header.sample_rate,
            "peak_vector_sum": header.peak_vector_sum,
            "header": header_json(header),
        },
    )
    return event


def _slots(device: Seismograph) -> dict[int, tuple[str, dt.datetime]]:
    rows = SeismoEvent.objects.filter(device=device, device_index__isnull=False)
    return {
        i: (k, ts)
        for i, k, ts in rows.values_list("device_index", "waveform_key", "timestamp")
        if i is not None  # excluded by the filter already; this narrows the type
    }


def sync_events(device_id: int, requested_at: float) -> bool:
    """Count probe, stamp check, then fetch only the indices not cached yet.

    The stamp check re-reads (waveform_key, timestamp) at the last cached index and at
    index 0: after an erase keys restart at 0x01110000, so a count-only check would take
    freshly recorded events for the old ones when their number happens to match.
    """
    device = Seismograph.objects.get(pk=device_id)
    if not device.events_stale and _answered_since(device.events_checked_at, requested_at):
        return False

    def work(device: Seismograph, client: MiniMateClient) -> None:
        count = client.count_events()
        cached = _slots(device)
        flush = len(cached) > count or any(i >= count for i in cached)
        fetched: dict[int, EventHeader] = {}
        if cached and not flush:
            # One walk: the last cached index (stamp check) and every new index after it.
            last = max(cached)
            fetched = {h.index: h for h in client.read_event_headers(last)}
            if 0 in cached and last != 0:
                fetched[0] = client.read_event_header(0)
            flush = any(_stamp(fetched[i]) != cached[i] for i in fetched if i in cached)
        if flush or not cached:
            cached = {}
            fetched = {h.index: h for h in client.read_event_headers(0)}
        with transaction.atomic():
            if flush:
                _flush_derived(device)
            for index in sorted(fetched):
                if index not in cached or flush:
                    _place(device, fetched[index])
            Seismograph.objects.filter(pk=device.pk).update(
                event_count=max(count, *(i + 1 for i in fetched), 0),
                events_checked_at=timezone.now(),
                events_stale=False,
            )

    _session(device_id, work)
    return True


# --- waveforms ---------------------------------------------------------------------------------


def fetch_waveform(device_id: int, index: int, force: bool, progress: Progress) -> bool:
    """Download the waveform at ``index`` unless the same event's waveform is stored.

    The header at the index is re-read first: a different (key, timestamp) than the cached
    one means the unit was erased behind our back, so the device's derived cache is flushed.
    Waveforms are immutable, so ``force`` re-verifies that identity rather than re-reading
    the same samples. The waveform row is created only after the whole stream arrived.
    """
    stored = SeismoWaveform.objects.filter(event__device_id=device_id, event__device_index=index)
    if not force and stored.exists():
        return False

    def work(device: Seismograph, client: MiniMateClient) -> bool:
        try:
            header = client.read_event_header(index)
        except NoSuchEvent:
            if index in _slots(device):  # we had an event there: erased behind our back
                _flush_derived(device)
            return False
        cached = _slots(device).get(index)
        with transaction.atomic():
            if cached is not None and cached != _stamp(header):
                _flush_derived(device)
            event = _place(device, header)
        if hasattr(event, "waveform"):
            return False
        waveform = client.read_waveform(index, progress=progress)
        if (waveform.waveform_key, waveform.timestamp) != _stamp(header):
            raise ProtocolError(f"waveform at index {index} is not the event of its header")
        store_waveform(event, waveform)
        return True

    return _session(device_id, work)


def store_waveform(event: SeismoEvent, waveform: Waveform) -> SeismoWaveform:
    compressed = zstandard.ZstdCompressor(level=settings.SEISMO_ZSTD_LEVEL).compress(waveform.raw)
    row, _ = SeismoWaveform.objects.get_or_create(
        event=event,
        defaults={
            "data": compressed,
            "encoding": WAVEFORM_ENCODING,
            "raw_size": len(waveform.raw),
            "compressed_size": len(compressed),
            "sha256": hashlib.sha256(waveform.raw).hexdigest(),
            "sample_rate": waveform.sample_rate,
            "channels": list(waveform.channels),
            "meta": {
                "pre_trigger_s": waveform.pre_trigger_s,
                "geo_range": waveform.geo_range,
                "chunks": waveform.chunks,
                "sample_count": waveform.sample_count,
            },
        },
    )
    return row


def waveform_raw(row: SeismoWaveform) -> bytes:
    return zstandard.ZstdDecompressor().decompress(bytes(row.data), max_output_size=row.raw_size)


# --- monitoring and erase --------------------------------------------------------------------


def refresh_monitor(device_id: int, requested_at: float) -> bool:
    entry = seismo_cache.get_monitor(device_id)
    if entry and entry["fetched_at"] >= requested_at:
        return False

    def work(device: Seismograph, client: MiniMateClient) -> None:
        status = client.read_monitor_status()
        data = asdict(status)
        data["clock"] = status.clock.isoformat()
        pending = seismo_cache.get_monitor_pending(device.pk)
        if (pending == "start" and status.monitoring) or (
            pending == "stop" and not status.monitoring
        ):
            seismo_cache.set_monitor_pending(device.pk, None)
        seismo_cache.set_monitor(
            device.pk, {"data": data, "fetched_at": timezone.now().timestamp()}
        )

    _session(device_id, work)
    return True


def set_monitoring(device_id: int, start: bool) -> None:
    """Start or stop monitoring; the cached status is evicted either way (seed rule)."""

    def work(device: Seismograph, client: MiniMateClient) -> None:
        seismo_cache.evict_monitor(device.pk)
        if start:
            client.start_monitoring()
        else:
            client.stop_monitoring()
        seismo_cache.set_monitor_pending(device.pk, "start" if start else "stop")
        seismo_cache.evict_monitor(device.pk)

    _session(device_id, work)


def erase(device_id: int) -> None:
    """Erase the unit's event memory. Stored events stay as history; the index map goes."""

    def work(device: Seismograph, client: MiniMateClient) -> None:
        client.erase_all()
        with transaction.atomic():
            _flush_derived(device)
            Seismograph.objects.filter(pk=device.pk).update(
                event_count=0, events_checked_at=timezone.now(), events_stale=False
            )
        seismo_cache.evict_monitor(device.pk)

    _session(device_id, work)


def clear_cache(device: Seismograph) -> dict[str, int]:
    """Drop everything cached for one unit (operator action), like seismo-relay's
    ``DELETE /cache/device``; returns the counts per layer."""
    with transaction.atomic():
        waveforms = SeismoWaveform.objects.filter(event__device=device).count()
        events, _ = SeismoEvent.objects.filter(device=device).delete()
        had_info = int(device.info is not None)
        Seismograph.objects.filter(pk=device.pk).update(
            info=None,
            info_fetched_at=None,
            config_dirty=False,
            event_count=None,
            events_checked_at=None,
            events_stale=False,
            offline=False,
            last_error="",
            last_error_kind="",
        )
    monitor = seismo_cache.clear_device(device.pk)
    return {
        "device_info": had_info,
        "events": events - waveforms,
        "waveforms": waveforms,
        "monitor_status": monitor,
    }


SERIAL_IDLE_GAP_S = 0.2  # a direct line has no modem forwarding buffer to wait out


def register_simulators(sims: list[SeismographSimulator]) -> list[Seismograph]:
    """Add (or re-point) one device per simulator. A pty gets a new path every run, so the
    row is found by its name and its conn_key updated rather than piling up rows."""
    devices = []
    for sim in sims:
        name = f"Simulated {sim.unit.identity.serial} ({sim.transport})"
        idle_gap = SERIAL_IDLE_GAP_S if sim.transport == "pty" else None
        device = Seismograph.objects.filter(name=name).first() or Seismograph(name=name)
        Seismograph.objects.filter(conn_key=sim.conn_key).exclude(pk=device.pk).delete()
        device.conn_key = sim.conn_key
        device.idle_gap_s = idle_gap
        device.save()
        devices.append(device)
    return devices
