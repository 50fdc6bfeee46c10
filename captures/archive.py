"""A ZIP of stored PNM files, produced chunk by chunk for a streaming response.

zipfile writes to a non-seekable stream with data descriptors, so each file is
decompressed and deflated in chunks and handed out as soon as it is written: memory use
is one chunk, not the archive.
"""

from __future__ import annotations

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


def stream_zip(entries: Iterable[tuple[str, str]]) -> Iterator[bytes]:
    """ZIP bytes for ``(archive name, stored relative path)`` pairs; missing files skipped."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, relative_path in entries:
            try:
                chunks = storage.iter_decompressed(relative_path)
                first = next(chunks, b"")
            except FileNotFoundError:
                continue
            with archive.open(name, mode="w", force_zip64=True) as member:
                member.write(first)
                for chunk in chunks:
                    member.write(chunk)
                    yield pipe.drain()
            yield pipe.drain()
    yield pipe.drain()
