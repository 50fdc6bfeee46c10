"""``manage.py tftp_receiver`` as its own process: listens, heartbeats, stops on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from core.heartbeats import live_ingesters
from tests.helpers import ROOT, wait_until, worker_environment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_receiver_process_heartbeats_and_stops_cleanly(tmp_path):
    log = tmp_path / "tftp.log"
    env = worker_environment(FIELDRELAY_SPOOL_DIR=str(tmp_path / "spool"))
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "tftp_receiver", "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            listening = wait_until(
                lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text()), 30
            )
            assert int(listening.group(1)) > 0
            beat = wait_until(
                lambda: [i for i in live_ingesters() if i.get("pid") == proc.pid], timeout=30
            )
            assert beat[0]["items"] == 0
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert "tftp receiver stopped" in log.read_text()
    assert (tmp_path / "spool" / ".partial").is_dir()
