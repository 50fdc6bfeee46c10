"""Container health probes, one per compose role: ``python -m config.probe <role> [node]``.

Each probe prints one line, ``ok: ...`` (exit 0) or the reason it failed (exit 1), so that
``docker inspect`` says why a container is unhealthy:

- ``web``: GET /health/ on 127.0.0.1 with an allowed Host (the path is exempt from the https
  redirect), 200 wanted;
- ``worker <node>``: a Celery ping answered by ``<node>@<this host>`` (``-n node@%h``);
- ``beat``: the scheduler's heartbeat (written on its ticks) is fresh;
- ``tftp`` / ``listener``: the receiver's socket is bound here and its heartbeat is fresh;
- ``flower``: GET <url prefix>/healthcheck answers OK.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

TIMEOUT_S = 4.0
# Beat writes its heartbeat at most this often; older than BEAT_STALE_S means it is stuck.
BEAT_HEARTBEAT_KEY = "beat:alive"
BEAT_HEARTBEAT_EVERY_S = 5.0
BEAT_STALE_S = 60.0


class ProbeFailed(Exception):
    """The role is not healthy; the message says why."""


def _get(port: int, path: str, host: str = "localhost") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read(300)
    except OSError as exc:
        raise ProbeFailed(f"GET http://127.0.0.1:{port}{path}: {exc}") from None
    finally:
        conn.close()


def allowed_host(value: str) -> str:
    """A concrete name from ALLOWED_HOSTS to send as Host (wildcards can't be sent)."""
    for name in (item.strip() for item in value.split(",")):
        if name and "*" not in name and not name.startswith("."):
            return name
    return "localhost"


def probe_web() -> str:
    port = int(os.environ.get("WEB_PORT", "8000"))
    host = allowed_host(os.environ.get("ALLOWED_HOSTS", ""))
    status, body = _get(port, "/health/", host)
    if status != 200:
        raise ProbeFailed(f"web: /health/ (Host {host}) answered {status}: {body!r}")
    return f"web: /health/ 200 on port {port}"


def probe_flower() -> str:
    port = int(os.environ.get("FLOWER_PORT", "5555"))
    prefix = os.environ.get("FLOWER_URL_PREFIX", "").strip("/")
    path = f"/{prefix}/healthcheck" if prefix else "/healthcheck"
    status, body = _get(port, path)
    if status != 200 or body.strip() != b"OK":
        raise ProbeFailed(f"flower: {path} answered {status}: {body!r}")
    return f"flower: {path} OK"


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    import django

    django.setup()


def probe_worker(node: str) -> str:
    _django()
    from config.celery_app import app

    name = f"{node}@{socket.gethostname()}"
    replies = app.control.ping(destination=[name], timeout=TIMEOUT_S - 1) or []
    if not any(name in reply for reply in replies):
        raise ProbeFailed(f"worker {name}: no answer to a ping within {TIMEOUT_S - 1:.0f} s")
    return f"worker {name}: pong"


def record_beat() -> None:
    """Called by beat's scheduler on its ticks: the heartbeat the beat probe reads."""
    from django.core.cache import cache

    cache.set(BEAT_HEARTBEAT_KEY, time.time(), timeout=None)


def probe_beat() -> str:
    _django()
    from django.core.cache import cache

    beat_at = cache.get(BEAT_HEARTBEAT_KEY)
    if beat_at is None:
        raise ProbeFailed("beat: no heartbeat yet (is the scheduler ticking?)")
    age = time.time() - float(beat_at)
    if age > BEAT_STALE_S:
        raise ProbeFailed(f"beat: last heartbeat {age:.0f} s ago (stale after {BEAT_STALE_S:.0f})")
    return f"beat: heartbeat {age:.0f} s ago"


def bound_ports(kind: str) -> set[int]:
    """The local ports of this network namespace's ``kind`` sockets (tcp: listening only)."""
    ports = set()
    for table in (f"/proc/net/{kind}", f"/proc/net/{kind}6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if kind == "tcp" and fields[3] != "0A":  # 0A: LISTEN
                continue
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _probe_receiver(role: str, name: str, kind: str, port: int) -> str:
    if port not in bound_ports(kind):
        raise ProbeFailed(f"{role}: nothing is bound to {kind} port {port} here")
    from core.heartbeats import live_ingesters

    host = socket.gethostname()
    mine = [beat for beat in live_ingesters() if beat.get("name") == name and beat["host"] == host]
    if not mine:
        raise ProbeFailed(f"{role}: {kind} port {port} bound, but no fresh heartbeat of {name!r}")
    return f"{role}: {kind} port {port} bound, heartbeat fresh (pid {mine[0]['pid']})"


def probe_tftp() -> str:
    _django()
    from django.conf import settings

    return _probe_receiver("tftp", "tftp", "udp", settings.PNM_TFTP_LISTEN_PORT)


def probe_listener() -> str:
    _django()
    from django.conf import settings

    name = os.environ.get("LISTENER_NAME", "instruments")
    return _probe_receiver("listener", name, "tcp", settings.MONITORING_LISTENER_PORT)


PROBES: dict[str, Callable[..., str]] = {
    "web": probe_web,
    "worker": probe_worker,
    "beat": probe_beat,
    "tftp": probe_tftp,
    "listener": probe_listener,
    "flower": probe_flower,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in PROBES or (argv[0] == "worker") != (len(argv) == 2):
        print(f"usage: python -m config.probe {{{','.join(PROBES)}}} [worker node name]")
        return 2
    try:
        print("ok:", PROBES[argv[0]](*argv[1:]))
    except ProbeFailed as exc:
        print(exc)
        return 1
    except Exception as exc:  # a probe must say why, whatever broke
        print(f"{argv[0]}: probe error {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
