"""With no service URLs the web process runs on SQLite, the filesystem broker and file cache."""

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.helpers import ROOT, embedded_environment

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_web_process_is_healthy_without_postgres_or_redis(tmp_path):
    env = embedded_environment(tmp_path)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = None
        deadline = time.monotonic() + 60
        while body is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.3)
        assert body is not None, "embedded web process did not answer /health/"
        assert '"status": "ok"' in body
        assert (tmp_path / "fieldrelay.sqlite3").exists()
        assert (tmp_path / "broker" / "queue").is_dir()
    finally:
        server.terminate()
        server.wait(10)
