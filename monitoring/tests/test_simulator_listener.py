"""The simulator feeding the real stream listener (a separate process) into PostgreSQL."""

from __future__ import annotations

import io
import itertools
import re
import signal
import subprocess
import sys
import threading

import pytest
from django.core.management import call_command

from monitoring.models import Instrument, Sample
from tests.helpers import ROOT, wait_until, worker_environment

COUNT, RATE, SECONDS = 3, 10, 2


class Listener:
    """``manage.py ingest_listener --port 0`` in a subprocess; its bound port from stdout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "ingest_listener", "--port=0", "--batch-seconds=0.2"],
            cwd=ROOT,
            env=worker_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.port: int | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None  # piped
        for text in self.proc.stdout:
            self.output.append(text)
            found = re.search(r"listening on [\d.]+:(\d+)", text)
            if found:
                self.port = int(found.group(1))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_simulated_monitors_land_in_the_database_through_the_listener():
    listener = Listener()
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
        listener.stop()
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
