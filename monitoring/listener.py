"""The instrument stream listener: TCP, newline-delimited line protocol, on the ingester base.

One thread multiplexes every connection with ``selectors``. Complete lines from all sources
are gathered into one item per batch interval (about a second), so the database sees one
COPY per second whatever the number of instruments; a line split across reads or across the
batch boundary is carried over whole. Per-source (peer address) counters go out with the
heartbeat. Imports no Django: the command wires ``forward``, ``heartbeat`` and the limits.

No single client can take the listener down or hold up the others:

- access control: an allow-list of source networks, checked at accept; and a shared token,
  which the first line of a connection must carry as ``fieldrelay_token=<token>``, either
  in a comment line ``# fieldrelay_token=<token>`` (dropped here) or as a tag of an
  ordinary line (what Telegraf can add to every line; stripped here from every line);
- a cap on open connections, an idle timeout (shorter before the token has come);
- per connection: at most ``max_bad_lines`` lines that are not even shaped like line
  protocol (they are dropped here, never forwarded), no line over ``MAX_LINE_BYTES``, and a
  byte rate budget beyond which the connection is not read for a while (TCP back-pressure);
  each select round reads at most ``READ_SIZE`` bytes from each ready connection, and at
  most ``FORWARD_QUEUE_BATCHES`` batches wait for the database before reading pauses;
- when ``accept()`` fails (EMFILE at the descriptor limit, ENFILE, ENOBUFS) the listener
  stops accepting for ``ACCEPT_BACKOFF_S`` and carries on; idle timeouts free descriptors.

Refusals and forced closes are counted (``snapshot``) and logged with the peer and the
reason, at most once per kind per ``EVENT_LOG_INTERVAL_S``; the token is never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import itertools
import logging
import re
import resource
import selectors
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable

from core.ingester import Ingester, Item

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
POLL_S = 0.1
SWEEP_S = 0.5
MAX_LINE_BYTES = 64 * 1024
AUTH_TIMEOUT_S = 10.0
ACCEPT_BACKOFF_S = 0.5
EVENT_LOG_INTERVAL_S = 10.0
# Descriptors the process needs besides its connections (database, cache, logs, files).
FD_RESERVE = 32
# Batches that may wait for the forwarder (~2 s of data, at most 2 x max_batch_bytes). When
# the database falls further behind, the listener stops reading from everyone, so TCP
# pushes back on every sender alike instead of memory filling up with one sender's backlog.
FORWARD_QUEUE_BATCHES = 2
TOKEN_TAG = b"fieldrelay_token"

# The shape of a line, checked without parsing: blank; a comment; or a first section, a
# space, and then something with an "=" (fields), with no control bytes but tab and CR.
# One ``fullmatch`` over all the complete lines of a read costs a few ns per byte; only
# when it fails are the lines checked one by one to drop and count the bad ones.
_CTRL = rb"\x00-\x08\x0a-\x0c\x0e-\x1f\x7f"
_LINE = (
    rb"[ \t]*(?:#[^" + _CTRL + rb"]*|[^" + _CTRL + rb" \t#][^" + _CTRL + rb" ]* "
    rb"[^" + _CTRL + rb"=]*=[^" + _CTRL + rb"]*)?\r?"
)
_GOOD_LINES = re.compile(rb"(?:" + _LINE + rb"\n)*")
_GOOD_LINE = re.compile(_LINE)


def token_in_first_line(line: bytes, token: bytes) -> tuple[bool, bool]:
    """(the line carries the token, it does so as a tag); compared in constant time."""
    line = line.strip()
    if line.startswith(b"#"):
        key, _, value = line[1:].strip().partition(b"=")
        return key == TOKEN_TAG and hmac.compare_digest(value, token), False
    for item in line.split(b" ", 1)[0].split(b",")[1:]:
        key, _, value = item.partition(b"=")
        if key == TOKEN_TAG:
            return hmac.compare_digest(value, token), True
    return False, False


class _Connection:
    __slots__ = (
        "authenticated",
        "bad_lines",
        "budget",
        "budget_at",
        "last_read",
        "paused_until",
        "peer",
        "rest",
        "sock",
        "strip",
    )

    def __init__(self, sock: socket.socket, peer: str, authenticated: bool, budget: float):
        self.sock, self.peer, self.rest = sock, peer, b""
        self.authenticated = authenticated
        self.strip: bytes | None = None  # the token tag, removed from every line
        self.last_read = self.budget_at = time.monotonic()
        self.bad_lines = 0
        self.budget = budget
        self.paused_until: float | None = None


class LineListener(Ingester):
    """Receive line protocol over TCP; ``emit`` a batch of complete lines per interval."""

    def __init__(
        self,
        *args,
        host: str = "127.0.0.1",
        port: int = 0,
        batch_s: float = 1.0,
        max_batch_bytes: int = 8 * 1024 * 1024,
        token: str = "",
        allow: Iterable[str] = (),
        max_connections: int = 256,
        idle_timeout_s: float = 120.0,
        max_bad_lines: int = 100,
        max_bytes_per_s: int = 2 * 1024 * 1024,
        **kwargs,
    ) -> None:
        super().__init__(*args, **{"queue_size": FORWARD_QUEUE_BATCHES, **kwargs})
        self.host, self.port = host, port
        self.batch_s, self.max_batch_bytes = batch_s, max_batch_bytes
        self._token = token.encode()
        self.allow = [ipaddress.ip_network(network, strict=False) for network in allow]
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.auth_timeout_s = min(AUTH_TIMEOUT_S, idle_timeout_s)
        self.max_bad_lines = max_bad_lines
        self.max_bytes_per_s = max_bytes_per_s  # 0: no limit
        self.ready = threading.Event()  # set once listening; ``port`` is then the bound port
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_since: float | None = None
        self._sources: dict[str, dict] = defaultdict(
            lambda: {
                "connections": 0,
                "lines": 0,
                "bytes": 0,
                "bad_lines": 0,
                "refused": 0,
                "last_seen": None,
            }
        )
        self._sources_lock = threading.Lock()
        self._batches = itertools.count(1)
        self._connections: dict[int, _Connection] = {}
        self._paused: list[_Connection] = []
        self._events: Counter[str] = Counter()
        self._event_logged: dict[str, list] = {}  # kind -> [last logged at, suppressed since]
        self._accept_resume_at: float | None = None
        self._backoff_episode = 0
        self._next_sweep = 0.0

    def snapshot(self) -> dict:
        with self._sources_lock:
            sources = {peer: dict(counters) for peer, counters in self._sources.items()}
            events = dict(self._events)
            open_connections = len(self._connections)
        return {
            **super().snapshot(),
            "address": f"{self.host}:{self.port}",
            "sources": sources,
            "open_connections": open_connections,
            "refused": {k: events.get(f"refused_{k}", 0) for k in ("network", "capacity", "token")},
            "closed": {k: events.get(f"closed_{k}", 0) for k in ("idle", "bad_lines", "long_line")},
            "throttled": events.get("throttled", 0),
            "accept_backoffs": events.get("accept_backoff", 0),
        }

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        server = socket.create_server((self.host, self.port), reuse_port=False)
        server.setblocking(False)
        self.port = server.getsockname()[1]
        selector.register(server, selectors.EVENT_READ, None)
        log.info(
            "listener %s on %s:%d (token %s, allow %s, at most %d connections)",
            self.name,
            self.host,
            self.port,
            "required" if self._token else "not required",
            ", ".join(map(str, self.allow)) or "any",
            self.max_connections,
        )
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft_limit != resource.RLIM_INFINITY and self.max_connections + FD_RESERVE > soft_limit:
            log.warning(
                "listener %s: %d connections + %d spare descriptors exceed the limit of %d "
                "open files; beyond it accept() fails and the listener backs off",
                self.name,
                self.max_connections,
                FD_RESERVE,
                soft_limit,
            )
        self.ready.set()
        try:
            while not self.stopping.is_set():
                for key, _ in selector.select(timeout=POLL_S):
                    if key.data is None:
                        self._accept(selector, server)
                    elif key.data.sock.fileno() >= 0:  # not closed earlier in this round
                        self._read(selector, key.data)
                now = time.monotonic()
                self._resume_due(selector, server, now)
                if now >= self._next_sweep:
                    self._sweep(selector, now)
                self._emit_if_due()
        finally:
            for conn in list(self._connections.values()):
                self._close(selector, conn, keep_rest=True)
            selector.close()
            server.close()
            self._emit_pending()

    # --- connections ---------------------------------------------------------------------
    def _accept(self, selector: selectors.BaseSelector, server: socket.socket) -> None:
        try:
            sock, address = server.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as error:  # EMFILE, ENFILE, ENOBUFS, ENOMEM: never fatal
            self._back_off(selector, server, error)
            return
        if self._backoff_episode:
            log.info(
                "listener %s: accepting again after %d back-off(s)",
                self.name,
                self._backoff_episode,
            )
            self._backoff_episode = 0
        peer = address[0]
        if self.allow and not self._allowed(peer):
            self._refuse(sock, peer, "network", "not in the allow-list")
        elif len(self._connections) >= self.max_connections:
            self._refuse(sock, peer, "capacity", f"{self.max_connections} connections open")
        else:
            sock.setblocking(False)
            conn = _Connection(sock, peer, not self._token, float(self.max_bytes_per_s))
            with self._sources_lock:
                self._sources[peer]["connections"] += 1
                self._connections[sock.fileno()] = conn
            selector.register(sock, selectors.EVENT_READ, conn)

    def _allowed(self, peer: str) -> bool:
        address = ipaddress.ip_address(peer)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)

    def _back_off(
        self, selector: selectors.BaseSelector, server: socket.socket, error: OSError
    ) -> None:
        self._count(None, "accept_backoff")
        if not self._backoff_episode:
            log.warning(
                "listener %s: accept() failed (%s) with %d connections open: "
                "not accepting for %.1f s at a time until it succeeds",
                self.name,
                error.strerror or error,
                len(self._connections),
                ACCEPT_BACKOFF_S,
            )
        self._backoff_episode += 1
        selector.unregister(server)
        self._accept_resume_at = time.monotonic() + ACCEPT_BACKOFF_S

    def _read(self, selector: selectors.BaseSelector, conn: _Connection) -> None:
        try:
            chunk = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(selector, conn, keep_rest=True)
            return
        now = time.monotonic()
        conn.last_read = now
        self._charge(selector, conn, len(chunk), now)
        data: bytes | None = conn.rest + chunk
        if not conn.authenticated:
            data = self._authenticate(selector, conn, conn.rest + chunk)
        if data is None:
            return
        cut = data.rfind(b"\n") + 1
        conn.rest = data[cut:]
        if cut and self._take(conn, data[:cut]) > self.max_bad_lines:
            self._drop(selector, conn, "bad_lines", f"{conn.bad_lines} malformed lines")
        elif len(conn.rest) > MAX_LINE_BYTES:
            self._drop(selector, conn, "long_line", f"a line over {MAX_LINE_BYTES} bytes")

    def _authenticate(
        self, selector: selectors.BaseSelector, conn: _Connection, data: bytes
    ) -> bytes | None:
        """What follows the first line once it carried the token; None until then."""
        end = data.find(b"\n")
        if end < 0:
            if len(data) > MAX_LINE_BYTES:
                self._drop(selector, conn, "token", "no token in the first line")
            else:
                conn.rest = data
            return None
        carried, as_tag = token_in_first_line(data[:end], self._token)
        if not carried:
            self._drop(selector, conn, "token", "no valid token in the first line")
            return None
        conn.authenticated = True
        if as_tag:
            conn.strip = b"," + TOKEN_TAG + b"=" + self._token
            return data
        return data[end + 1 :]

    def _take(self, conn: _Connection, lines: bytes) -> int:
        """Batch the well-shaped lines, drop the others; the connection's bad lines so far."""
        if conn.strip is not None:
            lines = lines.replace(conn.strip, b"")
        if _GOOD_LINES.fullmatch(lines) is None:
            rows = lines.split(b"\n")[:-1]
            kept = [row for row in rows if _GOOD_LINE.fullmatch(row)]
            bad = len(rows) - len(kept)
            conn.bad_lines += bad
            with self._sources_lock:
                self._sources[conn.peer]["bad_lines"] += bad
            lines = b"".join(row + b"\n" for row in kept)
        if lines:
            self._add(conn.peer, lines)
        return conn.bad_lines

    def _charge(
        self, selector: selectors.BaseSelector, conn: _Connection, size: int, now: float
    ) -> None:
        """Take ``size`` from the connection's byte budget; pause reading it when overdrawn."""
        rate = self.max_bytes_per_s
        if not rate:
            return
        conn.budget = min(rate, conn.budget + (now - conn.budget_at) * rate) - size
        conn.budget_at = now
        if conn.budget < 0:
            conn.paused_until = now - conn.budget / rate
            selector.unregister(conn.sock)
            self._paused.append(conn)
            self._count(conn.peer, "throttled", f"over {rate} bytes/s: not read for a while")

    def _resume_due(
        self, selector: selectors.BaseSelector, server: socket.socket, now: float
    ) -> None:
        if self._accept_resume_at is not None and now >= self._accept_resume_at:
            self._accept_resume_at = None
            selector.register(server, selectors.EVENT_READ, None)
        if not self._paused:
            return
        waiting = []
        for conn in self._paused:
            if conn.sock.fileno() < 0:
                continue
            if conn.paused_until is None or now >= conn.paused_until:
                conn.paused_until = None
                conn.last_read = now
                selector.register(conn.sock, selectors.EVENT_READ, conn)
            else:
                waiting.append(conn)
        self._paused = waiting

    def _sweep(self, selector: selectors.BaseSelector, now: float) -> None:
        """Close connections idle too long (a connection still owing its token: sooner)."""
        self._next_sweep = now + SWEEP_S
        for conn in list(self._connections.values()):
            if conn.paused_until is not None:
                continue
            if not conn.authenticated and now - conn.last_read > self.auth_timeout_s:
                self._drop(selector, conn, "token", f"no token within {self.auth_timeout_s:g} s")
            elif now - conn.last_read > self.idle_timeout_s:
                self._drop(selector, conn, "idle", f"idle for {self.idle_timeout_s:g} s")

    def _refuse(self, sock: socket.socket, peer: str, kind: str, reason: str) -> None:
        self._count(peer, f"refused_{kind}", reason)
        sock.close()

    def _drop(
        self, selector: selectors.BaseSelector, conn: _Connection, kind: str, reason: str
    ) -> None:
        """Close a connection for a reason; a refused token counts as a refusal."""
        self._count(conn.peer, f"refused_{kind}" if kind == "token" else f"closed_{kind}", reason)
        self._close(selector, conn, keep_rest=kind == "idle")

    def _count(self, peer: str | None, event: str, reason: str = "") -> None:
        """Count an event; log it (peer and reason) unless one of its kind was just logged.

        Refusals count per source too, except for addresses outside the allow-list: those
        would grow the table (and the heartbeat) without bound."""
        with self._sources_lock:
            self._events[event] += 1
            if peer is not None and event.startswith("refused_") and event != "refused_network":
                self._sources[peer]["refused"] += 1
        if not reason:
            return
        now = time.monotonic()
        logged = self._event_logged.setdefault(event, [float("-inf"), 0])
        if now - logged[0] < EVENT_LOG_INTERVAL_S:
            logged[1] += 1
            return
        more = f" ({logged[1]} more since the last report)" if logged[1] else ""
        verb = event.split("_", 1)[0]
        log.warning("listener %s: %s %s: %s%s", self.name, verb, peer, reason, more)
        logged[:] = [now, 0]

    def _close(
        self, selector: selectors.BaseSelector, conn: _Connection, *, keep_rest: bool
    ) -> None:
        """A last line without its newline still counts when the sender closes."""
        if conn.paused_until is None:
            selector.unregister(conn.sock)
        with self._sources_lock:
            self._connections.pop(conn.sock.fileno(), None)
        conn.sock.close()
        if keep_rest and conn.authenticated and conn.rest.strip():
            self._take(conn, conn.rest + b"\n")

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
