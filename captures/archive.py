"""A ZIP of stored PNM files (or of any chunked members), produced chunk by chunk for a
streaming response.

zipfile writes to a non-seekable stream with data descriptors, so each member is
deflated in chunks and handed out as soon as it is written: memory use is one chunk, not
the archive. A member's chunks are only produced when the archive reaches it.
"""

from __future__ import annotations

import itertools
import zipfile
from collections.abc import Iterable, Iterator

from captures import storage


class _Pipe:
    """A write-only file object whose contents are taken out by the generator."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._offset = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """Part of the writable-file protocol; ZipFile leaves a passed-in file open."""

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def stream_members(members: Iterable[tuple[str, Iterable[bytes]]]) -> Iterator[bytes]:
    """ZIP bytes for ``(archive name, chunks)`` pairs, in order."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, chunks in members:
            with archive.open(name, mode="w", force_zip64=True) as member:
                for chunk in chunks:
                    member.write(chunk)
                    yield pipe.drain()
            yield pipe.drain()
    yield pipe.drain()


def _stored_members(entries: Iterable[tuple[str, str]]) -> Iterator[tuple[str, Iterable[bytes]]]:
    for name, relative_path in entries:
        try:
            chunks = storage.iter_decompressed(relative_path)
            first = next(chunks, b"")
        except FileNotFoundError:
            continue
        yield name, itertools.chain((first,), chunks)


def stream_zip(entries: Iterable[tuple[str, str]]) -> Iterator[bytes]:
    """ZIP bytes for ``(archive name, stored relative path)`` pairs; missing files skipped."""
    return stream_members(_stored_members(entries))
