"""N simulated beam position monitors at a fixed rate, streaming line protocol over TCP.

The signals follow the button model the dashboard inverts: each button reads
``I·g·(1 ± x/kx ± y/ky)/4`` ADC counts (+x for the outer buttons, +y for the top ones),
so x and y computed on the dashboard give back the simulated orbit. The beam current is
common to every monitor (one beam: a slow decay with a top-up every two minutes); each
monitor has its own orbit offset, a slow drift, a small betatron-like oscillation and
independent button noise, all seeded by the monitor's name so runs are reproducible.
No Django: ``manage.py simulate_instruments`` is the thin command over it.
"""

from __future__ import annotations

import logging
import math
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from monitoring.bpm import BPM_CHANNELS, BPM_KX_MM, BPM_KY_MM
from monitoring.listener import TOKEN_TAG

log = logging.getLogger(__name__)

BUTTONS = tuple(BPM_CHANNELS)
# (sign of x, sign of y) for each button, in BUTTONS order.
BUTTON_SIGNS = ((-1, 1), (-1, -1), (1, -1), (1, 1))
MEASUREMENT = "bpm"
FULL_SCALE_COUNTS = 80_000.0
TOP_UP_PERIOD_S = 120.0
CONNECT_RETRY_S = 1.0
SEND_TIMEOUT_S = 5.0
MAX_CATCH_UP_TICKS = 50


@dataclass(frozen=True)
class Monitor:
    """One simulated BPM: its name and the parameters of its orbit."""

    name: str
    x_offset_mm: float
    y_offset_mm: float
    drift_mm: float
    drift_period_s: float
    oscillation_mm: float
    oscillation_hz: float
    noise: float
    gain: float
    phase: float

    @classmethod
    def from_name(cls, name: str) -> Monitor:
        rng = random.Random(name)  # noqa: S311 - simulation, not security
        return cls(
            name=name,
            x_offset_mm=rng.uniform(-1.0, 1.0),
            y_offset_mm=rng.uniform(-0.4, 0.4),
            drift_mm=rng.uniform(0.02, 0.15),
            drift_period_s=rng.uniform(300.0, 1800.0),
            oscillation_mm=rng.uniform(0.005, 0.03),
            oscillation_hz=rng.uniform(0.05, 0.4),
            noise=rng.uniform(0.0005, 0.002),
            gain=rng.uniform(0.9, 1.1),
            phase=rng.uniform(0.0, 2 * math.pi),
        )


def beam_current(t: float) -> float:
    """Relative beam current: decays over each top-up period, refilled at its start."""
    since_fill = t % TOP_UP_PERIOD_S
    return 0.92 + 0.08 * math.exp(-since_fill / (TOP_UP_PERIOD_S / 2))


def orbit(monitor: Monitor, t: float) -> tuple[float, float]:
    """The monitor's true (x, y) in millimetres at time t (seconds since the epoch)."""
    drift = math.sin(2 * math.pi * t / monitor.drift_period_s + monitor.phase)
    wobble = math.sin(2 * math.pi * monitor.oscillation_hz * t + monitor.phase)
    x = monitor.x_offset_mm + monitor.drift_mm * drift + monitor.oscillation_mm * wobble
    y = monitor.y_offset_mm + 0.5 * monitor.drift_mm * drift + 0.5 * monitor.oscillation_mm * wobble
    return x, y


def buttons(monitor: Monitor, t: float, rng: random.Random) -> tuple[float, ...]:
    """The four button readings (ADC counts, BUTTONS order) at time t."""
    x, y = orbit(monitor, t)
    quarter = FULL_SCALE_COUNTS * monitor.gain * beam_current(t) / 4
    return tuple(
        round(
            quarter * (1 + sx * x / BPM_KX_MM + sy * y / BPM_KY_MM) * rng.gauss(1, monitor.noise), 1
        )
        for sx, sy in BUTTON_SIGNS
    )


def line(monitor: Monitor, t_ns: int, values: tuple[float, ...]) -> str:
    """One InfluxDB line-protocol record with a nanosecond timestamp."""
    fields = ",".join(f"{name}={value}" for name, value in zip(BUTTONS, values, strict=True))
    return f"{MEASUREMENT},instrument={monitor.name} {fields} {t_ns}"


def ticks(rate: float, start: float, seconds: float | None) -> Iterator[int]:
    """Sample times (integer ns) on the rate's grid from start, waiting for each.

    Integer nanoseconds keep the grid exact: float seconds since the epoch would jitter
    the timestamps by a few hundred nanoseconds.
    """
    period_ns = round(1e9 / rate)
    index = math.ceil(start * 1e9 / period_ns)
    last = None if seconds is None else index + round(seconds * rate)
    while last is None or index < last:
        t_ns = index * period_ns
        delay = t_ns / 1e9 - time.time()
        if delay > 0:
            time.sleep(delay)
        elif -delay > MAX_CATCH_UP_TICKS * period_ns / 1e9:
            # Far behind (a stalled listener, a suspended laptop): skip, do not flood.
            index = math.ceil(time.time() * 1e9 / period_ns)
            continue
        yield t_ns
        index += 1


def monitor_names(count: int, prefix: str) -> list[str]:
    width = max(2, len(str(count)))
    return [f"{prefix}{number:0{width}d}" for number in range(1, count + 1)]


def connect(address: tuple[str, int], timeout: float, token: str = "") -> socket.socket:
    """A connection to the listener, retried until timeout (it may start after us); its
    first line is the listener's token when one is configured."""
    deadline = time.monotonic() + timeout
    while True:
        sock = None
        try:
            sock = socket.create_connection(address, timeout=SEND_TIMEOUT_S)
            if token:
                sock.sendall(b"# " + TOKEN_TAG + b"=" + token.encode() + b"\n")
        except OSError as error:
            if sock is not None:
                sock.close()
            if time.monotonic() + CONNECT_RETRY_S > deadline:
                raise ConnectionError(f"cannot reach the listener at {address}: {error}") from error
            time.sleep(CONNECT_RETRY_S)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def stream(
    monitors: list[Monitor],
    rate: float,
    address: tuple[str, int],
    seconds: float | None,
    connect_timeout: float,
    token: str = "",
) -> int:
    """Send one line per monitor per tick; reconnects if the listener goes away.

    What could not be sent is dropped, as a live instrument's readings would be.
    """
    rng = random.Random()  # noqa: S311 - simulation noise
    sock = connect(address, connect_timeout, token)
    sent = 0
    try:
        for t_ns in ticks(rate, time.time(), seconds):
            t = t_ns / 1e9
            batch = "".join(line(m, t_ns, buttons(m, t, rng)) + "\n" for m in monitors)
            try:
                sock.sendall(batch.encode())
            except OSError as error:
                log.warning("listener connection lost (%s): reconnecting", error)
                sock.close()
                sock = connect(address, connect_timeout, token)
                continue
            sent += len(monitors)
    finally:
        sock.close()
    return sent
