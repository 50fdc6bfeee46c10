"""The container health probes (config.probe) against real processes: green when the role
works, and one line saying why when it does not."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.probe import allowed_host, bound_ports
from tests.helpers import ROOT, stop_process, wait_until, worker_environment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def probe(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "config.probe", *args],
        cwd=ROOT,
        env=worker_environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def green(*args: str, **env: str) -> subprocess.CompletedProcess | None:
    result = probe(*args, **env)
    return result if result.returncode == 0 else None


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(args: list[str], log: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=worker_environment(**env),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def test_a_concrete_host_is_sent_whatever_allowed_hosts_holds():
    assert allowed_host("*, *.example.net, .example.net, fr.example.net") == "fr.example.net"
    assert allowed_host("") == "localhost"


def test_bound_ports_sees_a_listening_socket_only_while_it_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert port not in bound_ports("tcp")  # bound, not listening
        sock.listen()
        assert port in bound_ports("tcp")


def test_web_probe_passes_production_settings_over_plain_http(tmp_path):
    """Production redirects http to https and checks Host: the probe's request must pass
    both, as Docker runs it inside the web container."""
    port = free_port()
    production = {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "probe-test-" + "s" * 48,
        "ALLOWED_HOSTS": "*.invalid, fieldrelay.example.net",
        "WEB_PORT": str(port),
    }
    web = serve(
        ["-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}"],
        tmp_path / "web.log",
        **production,
    )
    try:
        ok = wait_until(lambda: green("web", **production), timeout=60, interval=0.5)
        assert ok.stdout.strip() == f"ok: web: /health/ 200 on port {port}"
    finally:
        stop_process(web)
    down = probe("web", **production)
    assert down.returncode == 1
    assert "Connection refused" in down.stdout


def test_worker_probe_pings_its_own_node(start_worker):
    worker = start_worker()
    node = worker.name.split("@")[0]

    ok = probe("worker", node)
    missing = probe("worker", "no-such-node")

    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.startswith(f"ok: worker {node}@{socket.gethostname()}: pong")
    assert missing.returncode == 1
    assert "no answer to a ping" in missing.stdout


def test_tftp_probe_wants_the_socket_and_a_fresh_heartbeat(tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    env = {"PNM_TFTP_LISTEN_PORT": str(port)}
    before = probe("tftp", **env)
    assert before.returncode == 1
    assert f"nothing is bound to udp port {port}" in before.stdout

    receiver = serve(
        ["manage.py", "tftp_receiver", "--host", "127.0.0.1"], tmp_path / "r.log", **env
    )
    try:
        ok = wait_until(lambda: green("tftp", **env), timeout=60, interval=0.5)
        assert f"udp port {port} bound, heartbeat fresh (pid {receiver.pid})" in ok.stdout
    finally:
        stop_process(receiver)


def test_beat_probe_reads_the_schedulers_heartbeat(tmp_path):
    beat = serve(
        ["-m", "celery", "-A", "config", "beat", "--pidfile=", "-s", str(tmp_path / "schedule")],
        tmp_path / "beat.log",
    )
    started = time.time()
    try:
        ok = wait_until(lambda: green("beat"), timeout=60, interval=0.5)
        age = int(ok.stdout.split("heartbeat ")[1].split(" s ago")[0])
        assert age <= time.time() - started
    finally:
        stop_process(beat)
