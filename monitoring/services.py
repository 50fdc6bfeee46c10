"""Plain functions over the monitoring models, for commands and the demo."""

from __future__ import annotations

from monitoring.models import BPM_CHANNELS, Instrument


def register_bpms(names: list[str]) -> int:
    """Create the BPM instruments that do not exist yet; returns how many were new."""
    existing = set(Instrument.objects.filter(name__in=names).values_list("name", flat=True))
    new = [
        Instrument(name=name, kind=Instrument.Kind.BPM, channels=list(BPM_CHANNELS))
        for name in names
        if name not in existing
    ]
    Instrument.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)
