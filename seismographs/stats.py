"""Cache statistics per layer: rows and bytes held, hits and misses served."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Count, Sum, TextField
from django.db.models.functions import Cast, Length

from seismographs import cache as seismo_cache
from seismographs.models import SeismoEvent, Seismograph, SeismoWaveform


def cache_stats(device: Seismograph | None = None) -> dict[str, Any]:
    """For one unit or all. Top-level counts keep seismo-relay's ``/cache/stats`` keys."""
    devices = (
        Seismograph.objects.all() if device is None else Seismograph.objects.filter(pk=device.pk)
    )
    events = SeismoEvent.objects.filter(device__in=devices)
    waveforms = SeismoWaveform.objects.filter(event__device__in=devices)
    infos = list(devices.exclude(info=None).values_list("info", flat=True))
    event_agg = events.aggregate(
        rows=Count("id"),
        bytes=Sum(Length(Cast("header", output_field=TextField()))),
        slots=Count("device_index"),
    )
    wave_agg = waveforms.aggregate(
        rows=Count("id"), bytes=Sum("compressed_size"), raw_bytes=Sum("raw_size")
    )
    device_ids = list(devices.values_list("pk", flat=True))
    monitors = seismo_cache.monitor_entries(device_ids)
    hits = seismo_cache.counters(device_ids)
    layers = {
        "info": {"rows": len(infos), "bytes": sum(len(json.dumps(i)) for i in infos)},
        "events": {
            "rows": event_agg["rows"],
            "bytes": event_agg["bytes"] or 0,
            "on_device": event_agg["slots"],
        },
        "waveforms": {
            "rows": wave_agg["rows"],
            "bytes": wave_agg["bytes"] or 0,
            "raw_bytes": wave_agg["raw_bytes"] or 0,
        },
        "monitor": {
            "rows": len(monitors),
            "bytes": sum(len(json.dumps(m)) for m in monitors.values()),
        },
    }
    for name, layer in layers.items():
        layer.update(hits[name])
    return {
        "devices": devices.count(),
        "events": event_agg["rows"],
        "waveforms": wave_agg["rows"],
        "monitor_status": len(monitors),
        "layers": layers,
    }
