"""``manage.py simulate_seismographs``: real processes, real links, stopped by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from seismographs.models import Seismograph
from seismographs.protocol import MiniMateClient
from seismographs.services import register_simulators
from simulators.seismograph import start_simulators
from tests.helpers import ROOT


@pytest.mark.slow
def test_command_prints_conn_keys_serves_them_and_stops_on_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "simulate_seismographs", "--time-scale", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None  # piped
    try:
        keys = [proc.stdout.readline().split()[0] for _ in range(2)]
        assert keys[0].startswith("tcp:127.0.0.1:")
        assert keys[1].startswith("serial:/dev/pts/")
        assert keys[1].endswith(":38400")
        for key in keys:
            with MiniMateClient.from_conn_key(key, timeout_s=2.0, idle_gap_s=0.05) as unit:
                assert unit.count_events() == 3
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert out.strip().endswith("stopped")
    assert proc.returncode == 0


@pytest.mark.django_db
def test_register_adds_one_device_per_simulator_and_repoints_on_rerun():
    first = start_simulators(tcp=1, pty=1, events=0, time_scale=0)
    try:
        devices = register_simulators(first)
    finally:
        for sim in first:
            sim.stop()
    assert [d.conn_key for d in devices] == [s.conn_key for s in first]
    assert devices[1].idle_gap_s is not None
    second = start_simulators(tcp=1, pty=0, events=0, time_scale=0)
    try:
        again = register_simulators(second)
    finally:
        second[0].stop()
    assert again[0].pk == devices[0].pk
    assert Seismograph.objects.get(pk=devices[0].pk).conn_key == second[0].conn_key
    assert Seismograph.objects.count() == 2
