"""The TFTP receiver for PNM uploads, on tftpy and the ingester base.

Modems upload a PNM file after a trigger; we accept a write request (WRQ) only when an
``Expectation`` registered by the capture task matches the file name AND the peer address
(the MIB's default names ``PNMDsMer_<MAC>_<epoch>`` / ``PNMChEstCoef_<MAC>_<epoch>`` match the
expectation of that modem and test too). Everything else is refused with a TFTP error and a
log line: paths, traversal, unknown peers, unexpected names, oversize files (aborted
mid-transfer), a second upload of a finished file, reads.

Uploads go to a real temp file in ``<spool>/.partial`` (tftpy flocks the file object, so a
BytesIO would crash it). Only a complete transfer (``context.state is None`` when tftpy
closes the file) is hard-linked into ``<spool>/<expected name>`` and emitted as
``Item(path=...)`` (a MIB default name, which two captures of one modem can share within a
second, is stored under the expected name it matched; ``meta["received_name"]`` keeps it);
an aborted or timed-out one is deleted and reported with ``ExpectationStore.failed``. tftpy
serves reads from its root, so its root is an always-empty ``<spool>/.tftproot``.

IPv4 only: tftpy's server socket is ``AF_INET``. A modem reached over IPv6 must be pointed
at an IPv4 receiver address.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import struct
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import tftpy
from tftpy.TftpShared import TftpErrors, TftpException

from core.ingester import Ingester, Item
from devices.links.pnm import parse_default_file_name

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 4 * 1024 * 1024  # PNM files are KB..~100 KB; a spectrum 41 KB
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_FINISHED_MEMORY = 10_000


# --- expectations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Expectation:
    """An upload we wait for. JSON-able through ``to_dict``/``from_dict`` (cache storage).

    ``mac`` (12 hex) and ``test`` (the file's test type) let the MIB default name of that
    modem's test match too; ``expires_at`` is epoch seconds (0 = no expiry); ``context`` is
    the caller's own ids (operation, channel ...), passed through to the emitted item.
    """

    file_name: str
    peer_ip: str
    mac: str = ""
    test: str = ""
    expires_at: float = 0.0
    context: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Expectation:
        return cls(**data)

    def lookup_keys(self) -> list[str]:
        """Keys under which a store should find this expectation (see ``lookup_key``):
        first the one for its own (unique) file name, then the MIB default name's."""
        keys = [f"name:{self.peer_ip}:{self.file_name}"]
        if self.mac and self.test:
            keys.append(f"default:{self.peer_ip}:{self.test}:{self.mac.lower()}")
        return keys

    def expired(self, now: float | None = None) -> bool:
        return bool(self.expires_at) and (now or time.time()) > self.expires_at


def lookup_key(file_name: str, peer_ip: str) -> str:
    """The key a WRQ for ``file_name`` from ``peer_ip`` looks up; one of ``lookup_keys``."""
    parsed = parse_default_file_name(file_name)
    if parsed is not None:
        test, mac, _epoch = parsed
        return f"default:{peer_ip}:{test}:{mac}"
    return f"name:{peer_ip}:{file_name}"


class ExpectationStore(Protocol):
    """Where the receiver asks whether an upload is expected, and reports how it ended.

    ``match`` must return ``None`` for expired or already finished expectations.
    """

    def match(self, file_name: str, peer_ip: str) -> Expectation | None: ...

    def finished(self, expectation: Expectation) -> None: ...

    def failed(self, expectation: Expectation, reason: str) -> None: ...


class InMemoryExpectationStore:
    """An ``ExpectationStore`` for tests, benches and the simulator (one process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, list[Expectation]] = {}
        self.done: list[Expectation] = []
        self.failures: list[tuple[Expectation, str]] = []

    def expect(self, expectation: Expectation) -> None:
        with self._lock:
            for key in expectation.lookup_keys():
                self._pending.setdefault(key, []).append(expectation)

    def match(self, file_name: str, peer_ip: str) -> Expectation | None:
        with self._lock:
            candidates = self._pending.get(lookup_key(file_name, peer_ip), [])
            live = [exp for exp in candidates if not exp.expired()]
            return live[0] if live else None

    def finished(self, expectation: Expectation) -> None:
        with self._lock:
            self._forget(expectation)
            self.done.append(expectation)

    def failed(self, expectation: Expectation, reason: str) -> None:
        with self._lock:
            self._forget(expectation)
            self.failures.append((expectation, reason))

    def _forget(self, expectation: Expectation) -> None:
        for key in expectation.lookup_keys():
            remaining = [exp for exp in self._pending.get(key, []) if exp is not expectation]
            if remaining:
                self._pending[key] = remaining
            else:
                self._pending.pop(key, None)


# --- the receiver ------------------------------------------------------------------------------
class Refused(Exception):
    """A write request we turn down; the message is the reason we log."""


def check_name(raw: str) -> str:
    """The bare file name, or ``Refused`` for anything that is not one."""
    if not raw:
        raise Refused("empty name")
    if raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", raw):
        raise Refused("absolute path")
    parts = re.split(r"[/\\]", raw)
    if ".." in parts:
        raise Refused("path traversal")
    if len(parts) > 1:
        raise Refused("path in name")
    if not _NAME_RE.match(raw):
        raise Refused("illegal characters in name")
    return raw


def _error_packet(code: int, message: str) -> bytes:
    return struct.pack("!HH", 5, code) + message.encode("ascii", "replace")[:200] + b"\0"


class _SpoolFile:
    """The file object tftpy writes an upload into: a real file, size-capped, hashed.

    tftpy calls ``close()`` on success and on abort alike; ``context.state is None`` tells a
    complete transfer from a broken one.
    """

    def __init__(
        self,
        receiver: TftpReceiver,
        name: str,
        received_name: str,
        expectation: Expectation,
        context: Any,
    ) -> None:
        self.receiver = receiver
        self.file_name = name  # as stored: the expected name
        self.received_name = received_name  # as the modem sent it (a MIB default name?)
        self.expectation = expectation
        self.context = context
        self.peer = (context.host, context.port)
        fd, path = tempfile.mkstemp(dir=receiver.partial_dir, prefix="upload-", suffix=".part")
        self._file = os.fdopen(fd, "wb")
        self.name = path  # tftpy logs fobj.name
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.abort_reason: str | None = None
        self.started = time.monotonic()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def fileno(self) -> int:
        return self._file.fileno()

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.receiver.max_bytes:
            self.abort_reason = f"larger than {self.receiver.max_bytes} bytes"
            self._send_error(TftpErrors.DiskFull, "file too large")
            raise TftpException(self.abort_reason)
        self.sha256.update(data)
        try:
            return self._file.write(data)
        except OSError as exc:  # tftpy survives only TftpException from here
            self.abort_reason = f"spool write failed: {exc.strerror}"
            self._send_error(TftpErrors.DiskFull, "disk full")
            raise TftpException(self.abort_reason) from exc

    def close(self) -> None:
        if self._file.closed:
            return
        complete = False
        try:
            self._file.close()
            if self.abort_reason is None and self.context.state is None:
                complete = self.receiver._completed(self)
            else:
                reason = self.abort_reason or "transfer aborted or timed out"
                self.receiver._aborted(self, reason)
        except Exception:  # tftpy would die on an exception here: log, never raise
            log.exception("tftp: finishing %s failed", self.file_name)
        finally:
            _unlink(self.name)
            self.receiver._release(self.file_name, finished=complete, alias=self.received_name)

    def _send_error(self, code: int, message: str) -> None:
        try:
            self.context.sock.sendto(
                _error_packet(code, message), (self.context.host, self.context.tidport)
            )
        except OSError:
            log.debug("tftp: could not send error to %s", self.peer)


def _unlink(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class TftpReceiver(Ingester):
    """Receive expected PNM uploads into ``spool_dir`` and emit each complete file."""

    def __init__(
        self,
        forward: Callable[[Item], None],
        expectations: ExpectationStore,
        spool_dir: str | Path,
        *,
        host: str = "0.0.0.0",
        port: int = 69,
        max_bytes: int = DEFAULT_MAX_BYTES,
        transfer_timeout_s: float = 5.0,
        retries: int = 3,
        name: str = "tftp",
        **ingester_options: Any,
    ) -> None:
        super().__init__(name, forward, **ingester_options)
        if not isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address):
            raise ValueError("the TFTP receiver listens on IPv4 only (tftpy uses AF_INET)")
        self.expectations = expectations
        self.host = host
        self.port = port
        self.max_bytes = max_bytes
        self.transfer_timeout_s = transfer_timeout_s
        self.retries = retries
        self.spool_dir = Path(spool_dir).resolve()
        self.partial_dir = self.spool_dir / ".partial"
        self.root_dir = self.spool_dir / ".tftproot"
        self.refusals: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._active: set[str] = set()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._server: tftpy.TftpServer | None = None
        self._server_ready = threading.Event()
        logging.getLogger("tftpy").setLevel(logging.WARNING)  # INFO per packet is 3x slower

    @property
    def bound_port(self) -> int:
        """The UDP port actually listened on (useful with ``port=0``); waits up to 10 s."""
        if not self._server_ready.wait(10) or self._server is None:
            raise RuntimeError("TFTP receiver is not listening")
        if not self._server.is_running.wait(10):
            raise RuntimeError("TFTP receiver is not listening")
        return int(self._server.listenport)

    def snapshot(self) -> dict[str, object]:
        """The base metrics plus refusals by reason (heartbeated, so operators see them)."""
        return {**super().snapshot(), "refused": dict(self.refusals)}

    def serve(self) -> None:
        self._prepare_spool()
        self._server = tftpy.TftpServer(str(self.root_dir), upload_open=self._upload_open)
        self._server_ready.set()
        watcher = threading.Thread(target=self._stop_when_asked, name=f"{self.name}-stop")
        watcher.start()
        try:
            self._server.listen(
                self.host, self.port, timeout=self.transfer_timeout_s, retries=self.retries
            )
        finally:
            self.stopping.set()
            watcher.join()

    # --- internals -------------------------------------------------------------------------
    def _prepare_spool(self) -> None:
        for directory in (self.spool_dir, self.partial_dir, self.root_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.partial_dir.glob("*.part"):  # from a crash: never complete
            _unlink(leftover)
        for stray in self.root_dir.iterdir():
            log.warning("tftp: removing %s from the read root", stray)
            _unlink(stray)

    def _stop_when_asked(self) -> None:
        self.stopping.wait()
        if self._server is not None:
            self._server.stop(now=True)  # noticed within one select timeout

    def _refuse(self, reason: str, raw: str, peer: str) -> None:
        self.refusals[reason] += 1
        log.warning("tftp: refused write of %r from %s: %s", raw, peer, reason)

    def _upload_open(self, _path: str, context: Any) -> _SpoolFile | None:
        """tftpy's hook for every WRQ; ``None`` makes it answer 'access violation'."""
        raw = str(context.file_to_transfer or "")
        peer = str(context.host)
        try:
            name = check_name(raw)
            with self._lock:
                expectation = self.expectations.match(name, peer)
                if expectation is None:
                    if name in self._finished or (self.spool_dir / name).exists():
                        raise Refused("already received")
                    raise Refused("not expected from this peer")
                # Stored under the name we expected: a MIB default name (MAC + second) can
                # be the same for two captures of one modem, the expected name cannot.
                stored = expectation.file_name
                if stored in self._active:
                    raise Refused("upload already in progress")
                if stored in self._finished or (self.spool_dir / stored).exists():
                    raise Refused("already received")
                self._active.add(stored)
        except Refused as refusal:
            self._refuse(str(refusal), raw, peer)
            return None
        except Exception:
            log.exception("tftp: refusing %r from %s after an error", raw, peer)
            self.refusals["internal error"] += 1
            return None
        try:
            return _SpoolFile(self, stored, name, expectation, context)
        except OSError:
            log.exception("tftp: cannot open a spool file for %r", name)
            self._release(stored)
            self.refusals["spool not writable"] += 1
            return None

    def _release(self, name: str, finished: bool = False, alias: str | None = None) -> None:
        """``name`` is no longer being written; ``finished`` remembers it (and the name it
        was sent under, ``alias``) so a second upload is refused as already received."""
        with self._lock:
            self._active.discard(name)
            if finished:
                self._finished[name] = None
                if alias:
                    self._finished[alias] = None
                while len(self._finished) > _FINISHED_MEMORY:
                    self._finished.popitem(last=False)

    def _completed(self, upload: _SpoolFile) -> bool:
        """Move a complete upload into place and hand it on; False if it cannot be stored."""
        final = self.spool_dir / upload.file_name
        try:
            os.link(upload.name, final)  # never overwrites, unlike rename
        except OSError as exc:
            self._aborted(upload, f"cannot store: {exc.strerror}")
            return False
        peer_ip, peer_port = upload.peer
        meta = {
            **upload.expectation.to_dict(),
            "received_name": upload.received_name,  # a MIB default name, or file_name
            "peer": peer_ip,
            "peer_port": peer_port,
            "size": upload.size,
            "sha256": upload.sha256.hexdigest(),
            "transfer_s": round(time.monotonic() - upload.started, 6),
        }
        sent_as = (
            "" if upload.received_name == upload.file_name else f" (sent as {upload.received_name})"
        )
        log.info(
            "tftp: received %s%s from %s (%d bytes)",
            upload.file_name,
            sent_as,
            peer_ip,
            upload.size,
        )
        self.emit(Item(source=self.name, key=upload.file_name, path=str(final), meta=meta))
        self.expectations.finished(upload.expectation)
        return True

    def _aborted(self, upload: _SpoolFile, reason: str) -> None:
        self.refusals[reason] += 1
        log.warning("tftp: discarded %s from %s: %s", upload.file_name, upload.peer[0], reason)
        self.expectations.failed(upload.expectation, reason)
