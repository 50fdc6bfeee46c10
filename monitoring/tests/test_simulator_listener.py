"""The simulator feeding the real stream listener (a separate process, requiring a token)
into PostgreSQL."""

from __future__ import annotations

import io
import itertools

import pytest
from django.core.management import call_command

from monitoring.models import Instrument, Sample
from monitoring.tests.helpers import ListenerProcess
from tests.helpers import wait_until

COUNT, RATE, SECONDS = 3, 10, 2
TOKEN = "simulator-test-token-0123"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_simulated_monitors_land_in_the_database_through_the_listener(settings):
    settings.MONITORING_LISTENER_TOKEN = TOKEN  # the simulator sends what the listener wants
    listener = ListenerProcess(env={"MONITORING_LISTENER_TOKEN": TOKEN})
    try:
        wait_until(lambda: listener.port, timeout=60)
        out = io.StringIO()
        call_command(
            "simulate_instruments",
            f"--count={COUNT}",
            f"--rate={RATE}",
            f"--port={listener.port}",
            f"--seconds={SECONDS}",
            "--prefix=LST",
            "--create",
            stdout=out,
        )
        assert f"sent {COUNT * RATE * SECONDS} samples" in out.getvalue()
        expected = COUNT * RATE * SECONDS
        wait_until(lambda: Sample.objects.count() >= expected, timeout=30)
    finally:
        snapshot = listener.stop()
    assert snapshot["refused"] == {"network": 0, "capacity": 0, "token": 0}
    monitors = Instrument.objects.filter(name__startswith="LST")
    assert monitors.count() == COUNT
    for monitor in monitors:
        rows = Sample.objects.filter(instrument=monitor).order_by("ts")
        assert rows.count() == RATE * SECONDS, "".join(listener.output)
        stamps = [row.ts.timestamp() for row in rows]
        gaps = {round(b - a, 3) for a, b in itertools.pairwise(stamps)}
        assert gaps == {1 / RATE}
        assert all(row.c0 > 0 and row.c3 is not None and row.c3 > 0 for row in rows)
    assert Sample.objects.count() == expected
