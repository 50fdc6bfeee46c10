"""Compressed PNM files under FIELDRELAY_STORAGE_ROOT, and the spool they come from.

Files are written to a temporary name and renamed, so a crash never leaves half a file
under a name a transaction points to. The spool falls back to a user-scoped directory
when the configured one is not writable (as PyPNM does for its ingress dir), loudly.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard
from django.conf import settings

log = logging.getLogger(__name__)

CODEC = "zstd"
READ_CHUNK = 64 * 1024


class StorageUnavailable(OSError):
    """The storage root cannot take the file; the spool copy is kept for a retry."""


class StoredFileDamaged(zstandard.ZstdError):
    """A stored file is truncated or corrupt: it must not be served as if it were whole.

    A ``ZstdError``, so callers that already treat an undecodable file as unreadable
    (``captures.analysis``) treat a truncated one the same way.
    """


@dataclass(frozen=True)
class StoredFile:
    relative_path: str
    size_before: int
    size_after: int
    sha256: str
    level: int

    def transaction_fields(self) -> dict[str, object]:
        """The Transaction storage columns, so every writer of a transaction sets them alike."""
        return {
            "stored_path": self.relative_path,
            "is_compressed": True,
            "codec": CODEC,
            "level": self.level,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "sha256": self.sha256,
        }


def storage_root() -> Path:
    return Path(settings.FIELDRELAY_STORAGE_ROOT)


def stored_relative_path(mac_hex: str, stored_name: str) -> str:
    """``pnm/<mac>/<name>``: one folder per modem keeps directories small."""
    return f"pnm/{mac_hex}/{stored_name}"


def store_compressed(data: bytes, relative_path: str, level: int) -> StoredFile:
    """Compress ``data`` with zstd and write it atomically under the storage root."""
    target = storage_root() / relative_path
    compressed = zstandard.ZstdCompressor(level=level, write_checksum=True).compress(data)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(compressed)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StorageUnavailable(
            f"storage root {storage_root()} is not writable ({exc.strerror or exc}); "
            "the received file stays in the spool and staging will be retried"
        ) from exc
    return StoredFile(
        relative_path=relative_path,
        size_before=len(data),
        size_after=len(compressed),
        sha256=hashlib.sha256(data).hexdigest(),
        level=level,
    )


def open_stored(relative_path: str):
    """The stored (compressed) file, opened for reading."""
    return (storage_root() / relative_path).open("rb")


def iter_decompressed(relative_path: str) -> Iterator[bytes]:
    """The original bytes of a stored file, in chunks, never all in memory.

    zstd's stream reader simply stops at the end of a truncated file, so the frame is fed
    to a decompression object instead: at the end of the file its frame must be finished
    (every file is one frame with a checksum, which zstd verifies as it ends) and nothing
    may follow it. Otherwise ``StoredFileDamaged`` is raised after the last good chunk, so
    a streaming response aborts rather than ends as if the file were complete.
    """
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    with open_stored(relative_path) as raw:
        while chunk := raw.read(READ_CHUNK):
            try:
                data = decompressor.decompress(chunk)
            except zstandard.ZstdError as exc:
                raise StoredFileDamaged(f"stored file {relative_path} is corrupt: {exc}") from exc
            if data:
                yield data
    if not decompressor.eof:
        raise StoredFileDamaged(f"stored file {relative_path} is truncated (zstd frame unfinished)")
    if decompressor.unused_data:
        raise StoredFileDamaged(f"stored file {relative_path} has data after its zstd frame")


def check_stored_size(relative_path: str, size_after: int) -> None:
    """Refuse a stored file whose length is not the one recorded: a cheap check done
    before a download starts, so a truncated file gets an error response, not a short one."""
    actual = (storage_root() / relative_path).stat().st_size
    if actual != size_after:
        raise StoredFileDamaged(
            f"stored file {relative_path} is {actual} bytes, {size_after} were recorded"
        )


def iter_stored(relative_path: str) -> Iterator[bytes]:
    with open_stored(relative_path) as raw:
        while chunk := raw.read(READ_CHUNK):
            yield chunk


def usable_spool_dir() -> Path:
    """The configured spool dir, or a user-scoped fallback when it is not writable."""
    configured = Path(settings.FIELDRELAY_SPOOL_DIR)
    if _writable(configured):
        return configured
    fallback = Path(tempfile.gettempdir()) / "fieldrelay" / f"spool-{os.getuid()}"
    fallback.mkdir(parents=True, exist_ok=True, mode=0o700)
    log.error(
        "SPOOL DIR %s IS NOT WRITABLE: received PNM files go to the fallback %s instead; "
        "fix the permissions of FIELDRELAY_SPOOL_DIR",
        configured,
        fallback,
    )
    return fallback


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            return True
    except OSError:
        return False
