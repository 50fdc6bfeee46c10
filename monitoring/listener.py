"""The instrument stream listener: TCP, newline-delimited line protocol, on the ingester base.

One thread multiplexes every connection with ``selectors``. Complete lines from all sources
are gathered into one item per batch interval (about a second), so the database sees one
COPY per second whatever the number of instruments; a line split across reads or across the
batch boundary is carried over whole. Per-source (peer address) counters go out with the
heartbeat. Imports no Django: the command wires ``forward`` and ``heartbeat``.
"""

from __future__ import annotations

import itertools
import logging
import selectors
import socket
import threading
import time
from collections import defaultdict

from core.ingester import Ingester, Item

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
POLL_S = 0.1
MAX_LINE_BYTES = 64 * 1024


class LineListener(Ingester):
    """Receive line protocol over TCP; ``emit`` a batch of complete lines per interval."""

    def __init__(
        self,
        *args,
        host: str = "127.0.0.1",
        port: int = 0,
        batch_s: float = 1.0,
        max_batch_bytes: int = 8 * 1024 * 1024,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.host, self.port = host, port
        self.batch_s, self.max_batch_bytes = batch_s, max_batch_bytes
        self.ready = threading.Event()  # set once listening; ``port`` is then the bound port
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_since: float | None = None
        self._sources: dict[str, dict] = defaultdict(
            lambda: {"connections": 0, "lines": 0, "bytes": 0, "last_seen": None}
        )
        self._sources_lock = threading.Lock()
        self._batches = itertools.count(1)

    def snapshot(self) -> dict:
        with self._sources_lock:
            sources = {peer: dict(counters) for peer, counters in self._sources.items()}
        return {**super().snapshot(), "address": f"{self.host}:{self.port}", "sources": sources}

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        server = socket.create_server((self.host, self.port), reuse_port=False)
        server.setblocking(False)
        self.port = server.getsockname()[1]
        selector.register(server, selectors.EVENT_READ, None)
        log.info("listener %s on %s:%d", self.name, self.host, self.port)
        self.ready.set()
        try:
            while not self.stopping.is_set():
                for key, _ in selector.select(timeout=POLL_S):
                    if key.data is None:
                        self._accept(selector, server)
                    else:
                        self._read(selector, key)
                self._emit_if_due()
        finally:
            for key in list(selector.get_map().values()):
                if key.data is not None:
                    self._close(selector, key)
            selector.close()
            server.close()
            self._emit_pending()

    # --- connections ---------------------------------------------------------------------
    def _accept(self, selector: selectors.BaseSelector, server: socket.socket) -> None:
        try:
            conn, address = server.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        peer = address[0]
        with self._sources_lock:
            self._sources[peer]["connections"] += 1
        selector.register(conn, selectors.EVENT_READ, {"peer": peer, "rest": b""})

    def _read(self, selector: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        try:
            chunk = _socket(key).recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(selector, key)
            return
        state = key.data
        data = state["rest"] + chunk
        cut = data.rfind(b"\n") + 1
        state["rest"] = data[cut:]
        if len(state["rest"]) > MAX_LINE_BYTES:
            log.warning("listener %s: dropping a line over %d bytes", self.name, MAX_LINE_BYTES)
            state["rest"] = b""
        if cut:
            self._add(state["peer"], data[:cut])

    def _close(self, selector: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        """A last line without its newline still counts when the sender closes."""
        selector.unregister(key.fileobj)
        _socket(key).close()
        rest = key.data["rest"]
        if rest.strip():
            self._add(key.data["peer"], rest + b"\n")

    # --- batching ------------------------------------------------------------------------
    def _add(self, peer: str, lines: bytes) -> None:
        with self._sources_lock:
            counters = self._sources[peer]
            counters["lines"] += lines.count(b"\n")
            counters["bytes"] += len(lines)
            counters["last_seen"] = time.time()
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        self._pending.append(lines)
        self._pending_bytes += len(lines)
        if self._pending_bytes >= self.max_batch_bytes:
            self._emit_pending()

    def _emit_if_due(self) -> None:
        since = self._pending_since
        if since is not None and time.monotonic() - since >= self.batch_s:
            self._emit_pending()

    def _emit_pending(self) -> None:
        if not self._pending:
            return
        payload = b"".join(self._pending)
        self._pending, self._pending_bytes, self._pending_since = [], 0, None
        key = f"{self.name}-{int(time.time() * 1000)}-{next(self._batches)}"
        self.emit(Item(source=self.name, key=key, payload=payload))


def _socket(key: selectors.SelectorKey) -> socket.socket:
    """The connection a selector key was registered for (the selector types it loosely)."""
    assert isinstance(key.fileobj, socket.socket)
    return key.fileobj
