"""The small base every receiver of device data is built on (TFTP receiver, stream listener).

A protocol-specific subclass implements ``serve()`` and calls ``emit()`` for each complete
item. The base decouples receiving from forwarding with a bounded queue, forwards items to
workers on its own thread (the items waiting together in one call, if the subclass's user
gives ``forward_together``), keeps per-source metrics, heartbeats its liveness, can dump what
it received to a replayable file, and stops cleanly on SIGTERM. Imports no Django.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from core.retry import backoff_s

log = logging.getLogger(__name__)

# A failing forward is retried for about 26 s in all (0.2 s doubling, at most 5 s apart):
# long enough to ride out a database or broker restart, the source waiting meanwhile.
FORWARD_ATTEMPTS = 10
FORWARD_BACKOFF_S = 0.2
FORWARD_BACKOFF_MAX_S = 5.0
_LATENCY_WINDOW = 2048
# At most this many waiting items go to one ``forward_together`` call.
MAX_TOGETHER = 64
LINGER_SLICE_S = 0.1  # a long linger looks this often whether a full batch is waiting


@dataclass(frozen=True)
class Item:
    """One unit of received data: a batch of lines, or a complete file on disk."""

    source: str
    key: str
    payload: bytes = b""
    path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    received_at: float = 0.0

    @property
    def size(self) -> int:
        if self.payload or self.path is None:
            return len(self.payload)
        try:
            return Path(self.path).stat().st_size
        except OSError:
            return 0

    def read(self) -> bytes:
        """The item's bytes, from memory or from its file."""
        if self.payload or self.path is None:
            return self.payload
        return Path(self.path).read_bytes()


class _Window:
    """Recent samples of a duration, for percentiles without unbounded memory."""

    def __init__(self) -> None:
        self._values: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self._lock = threading.Lock()

    def add(self, value_ms: float) -> None:
        with self._lock:
            self._values.append(value_ms)

    def summary(self) -> dict[str, float]:
        with self._lock:
            values = sorted(self._values)
        if not values:
            return {"p50": 0.0, "p95": 0.0, "max": 0.0}

        def pick(fraction: float) -> float:
            return round(values[min(len(values) - 1, int(fraction * len(values)))], 3)

        return {"p50": pick(0.5), "p95": pick(0.95), "max": round(values[-1], 3)}


class IngestMetrics:
    """Counters and latency windows of one ingester; safe to read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items = 0
        self.bytes = 0
        self.errors = 0
        self.lost = 0
        self.started_at = time.time()
        self.last_item_at: float | None = None
        self.forward_latency = _Window()
        self.queue_wait = _Window()

    def received(self, size: int) -> None:
        with self._lock:
            self.items += 1
            self.bytes += size
            self.last_item_at = time.time()

    def failed(self, lost: bool = False) -> None:
        with self._lock:
            self.errors += 1
            self.lost += int(lost)

    def snapshot(self, queue_depth: int = 0) -> dict[str, object]:
        with self._lock:
            counters = {
                "items": self.items,
                "bytes": self.bytes,
                "errors": self.errors,
                "lost": self.lost,
                "started_at": self.started_at,
                "last_item_at": self.last_item_at,
            }
        return {
            **counters,
            "forward_latency_ms": self.forward_latency.summary(),
            "queue_wait_ms": self.queue_wait.summary(),
            "queue_depth": queue_depth,
        }


class Ingester(ABC):
    """Receive with ``serve()``, forward with ``forward``; see the module docstring."""

    def __init__(
        self,
        name: str,
        forward: Callable[[Item], None],
        *,
        forward_together: Callable[[list[Item]], None] | None = None,
        heartbeat: Callable[[str, dict[str, object]], None] | None = None,
        heartbeat_interval_s: float = 5.0,
        dump_path: str | Path | None = None,
        queue_size: int = 10_000,
        linger_s: float = 0.0,
    ) -> None:
        self.name = name
        # With ``forward_together``: how long to wait after an item for more to join its
        # call. Each call has a fixed cost downstream (a task, a transaction), so a few
        # milliseconds of latency buy fewer, bigger calls when items arrive steadily.
        self.linger_s = linger_s
        self.forward = forward
        self.forward_together = forward_together
        self.heartbeat = heartbeat
        self.heartbeat_interval_s = heartbeat_interval_s
        self.dump_path = Path(dump_path) if dump_path else None
        self.stopping = threading.Event()
        # Set once serve() has returned: only then may the forwarder finish, because a
        # source may still emit what it holds while it shuts down.
        self._served = threading.Event()
        self.metrics = IngestMetrics()
        self._queue: queue.Queue[tuple[Item, float]] = queue.Queue(maxsize=queue_size)
        self._dump_file: IO[str] | None = None
        self._dump_lock = threading.Lock()

    # --- the protocol side -------------------------------------------------------------
    @abstractmethod
    def serve(self) -> None:
        """Receive until ``self.stopping`` is set, calling ``emit`` for each item."""

    def emit(self, item: Item) -> None:
        """Queue a complete item for forwarding; blocks while the queue is full."""
        if not item.received_at:
            item = replace(item, received_at=time.time())
        self.metrics.received(item.size)
        if self._dump_file is not None:
            self._dump(item)
        self._queue.put((item, time.monotonic()))

    # --- lifecycle -----------------------------------------------------------------------
    def run(self) -> None:
        """Serve until stopped, then forward whatever was already received."""
        if self.dump_path is not None:
            self.dump_path.parent.mkdir(parents=True, exist_ok=True)
            self._dump_file = self.dump_path.open("a", encoding="utf-8")
        forwarder = threading.Thread(target=self._forward_loop, name=f"{self.name}-forward")
        beater = threading.Thread(target=self._heartbeat_loop, name=f"{self.name}-heartbeat")
        forwarder.start()
        beater.start()
        log.info("ingester %s started", self.name)
        try:
            self.serve()
        finally:
            self.stopping.set()
            self._served.set()
            forwarder.join()
            beater.join()
            if self._dump_file is not None:
                self._dump_file.close()
                self._dump_file = None
            self._beat()
            log.info("ingester %s stopped: %s", self.name, self.metrics.snapshot())

    def stop(self) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        """Stop on SIGTERM/SIGINT (main thread only, as signal handlers must be)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())

    def snapshot(self) -> dict[str, object]:
        return {"name": self.name, **self.metrics.snapshot(self._queue.qsize())}

    # --- internals -----------------------------------------------------------------------
    def _forward_loop(self) -> None:
        while not (self._served.is_set() and self._queue.empty()):
            try:
                batch = [self._queue.get(timeout=0.1)]
            except queue.Empty:
                continue
            if self.forward_together is not None:
                batch += self._joining(len(batch))
            now = time.monotonic()
            for _, queued_at in batch:
                self.metrics.queue_wait.add((now - queued_at) * 1000)
            items = [item for item, _ in batch]
            if len(items) == 1 or not self._forwarded_together(items):
                for item in items:
                    self._forward_with_retries(item)

    def _joining(self, have: int) -> list[tuple[Item, float]]:
        """The items that join a call already holding ``have``: those waiting now, and
        those arriving within ``linger_s`` (a stop ends the wait: shut down promptly).

        The linger is a wait on the stop event, then one drain of the queue: a blocking
        ``get`` woke this thread for every item put meanwhile, a thread switch (and a GIL
        hand-over) per upload that the receiving thread paid for."""
        until = time.monotonic() + self.linger_s
        while not self.stopping.is_set() and have + self._queue.qsize() < MAX_TOGETHER:
            left = until - time.monotonic()
            if left <= 0:
                break
            self.stopping.wait(min(left, LINGER_SLICE_S))  # a put does not wake this
        joining: list[tuple[Item, float]] = []
        while have + len(joining) < MAX_TOGETHER:
            try:
                joining.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return joining

    def _forwarded_together(self, items: list[Item]) -> bool:
        """One ``forward_together`` call for the items that were waiting: under load one
        call for many files. False if it failed: each then goes alone, with the retries,
        so one bad item cannot hold back the rest."""
        assert self.forward_together is not None
        started = time.monotonic()
        try:
            self.forward_together(items)
        except Exception:
            self.metrics.failed()
            log.exception(
                "ingester %s: forwarding %d items together failed; one at a time now",
                self.name,
                len(items),
            )
            return False
        elapsed_ms = (time.monotonic() - started) * 1000
        for _ in items:
            self.metrics.forward_latency.add(elapsed_ms)
        return True

    def _forward_with_retries(self, item: Item) -> None:
        for attempt in range(1, FORWARD_ATTEMPTS + 1):
            started = time.monotonic()
            try:
                self.forward(item)
            except Exception:
                lost = attempt == FORWARD_ATTEMPTS
                self.metrics.failed(lost=lost)
                log.exception(
                    "ingester %s: forwarding %s failed (attempt %d/%d)",
                    self.name,
                    item.key,
                    attempt,
                    FORWARD_ATTEMPTS,
                )
                if lost:
                    self._park_failed(item)
                    return
                time.sleep(
                    backoff_s(attempt - 1, FORWARD_BACKOFF_S, FORWARD_BACKOFF_MAX_S, jitter=0.0)
                )
            else:
                self.metrics.forward_latency.add((time.monotonic() - started) * 1000)
                return

    def _park_failed(self, item: Item) -> None:
        """Keep an item no worker took, in dump format, so it can be replayed later.

        If even that fails (EMFILE, a full disk) the item is lost, but the forwarder lives
        on: a dead forwarder would stall the source once its queue is full."""
        folder = self.dump_path.parent if self.dump_path else Path.cwd()
        target = folder / f"failed-{self.name}.jsonl"
        try:
            with self._dump_lock, target.open("a", encoding="utf-8") as handle:
                handle.write(encode_item(item) + "\n")
        except OSError:
            log.exception(
                "ingester %s: %s lost, it could not be kept in %s", self.name, item.key, target
            )
            return
        log.error("ingester %s: %s kept in %s for replay", self.name, item.key, target)

    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(self.heartbeat_interval_s):
            self._beat()

    def _beat(self) -> None:
        if self.heartbeat is None:
            return
        try:
            self.heartbeat(self.name, self.snapshot())
        except Exception:
            log.exception("ingester %s: heartbeat failed", self.name)

    def _dump(self, item: Item) -> None:
        line = encode_item(item)
        with self._dump_lock:
            assert self._dump_file is not None
            self._dump_file.write(line + "\n")
            self._dump_file.flush()


def encode_item(item: Item) -> str:
    """One JSON line; the payload (or the file's contents) inlined as base64."""
    record = asdict(item)
    record["payload"] = base64.b64encode(item.read()).decode("ascii")
    record["path"] = None
    return json.dumps(record, separators=(",", ":"))


def decode_item(line: str) -> Item:
    record = json.loads(line)
    record["payload"] = base64.b64decode(record["payload"])
    return Item(**record)


def read_dump(path: str | Path) -> Iterator[Item]:
    """The items of a dump file, in the order they were received."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield decode_item(line)


def replay(path: str | Path, forward: Callable[[Item], None]) -> int:
    """Feed a dump back through ``forward``; returns how many items were replayed."""
    count = 0
    for item in read_dump(path):
        forward(item)
        count += 1
    return count
