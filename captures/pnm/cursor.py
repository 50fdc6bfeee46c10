"""A bounds-checked reader over a byte buffer.

Every read checks the remaining length *before* touching (or allocating for) the data, so a
hostile length field can never make a parser allocate more than the buffer it was given.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from captures.pnm.errors import PnmFormatError


@lru_cache(maxsize=64)
def _layout(formats: tuple[str, ...]) -> tuple[struct.Struct, tuple[int, ...]]:
    """One big-endian Struct for a run of fields, plus each field's relative offset."""
    offsets = []
    size = 0
    for fmt in formats:
        offsets.append(size)
        size += struct.calcsize(">" + fmt)
    return struct.Struct(">" + "".join(formats)), tuple(offsets)


class Cursor:
    """Sequential big-endian reads with absolute offsets in every error."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _need(self, size: int, field: str) -> None:
        if size > self.remaining:
            raise PnmFormatError(
                field, self.pos, f"needs {size} bytes, only {max(self.remaining, 0)} left"
            )

    def fields(self, spec: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """Read named struct fields, e.g. ``[("channel_id", "B"), ("mac", "6s")]``; each value
        has the type its format gives (int, bytes, float), which struct does not declare."""
        names = tuple(name for name, _ in spec)
        layout, offsets = _layout(tuple(fmt for _, fmt in spec))
        if layout.size > self.remaining:
            for (name, fmt), off in zip(spec, offsets, strict=True):
                size = struct.calcsize(">" + fmt)
                if off + size > self.remaining:
                    left = max(self.remaining - off, 0)
                    raise PnmFormatError(
                        name, self.pos + off, f"needs {size} bytes, only {left} left"
                    )
        values = layout.unpack_from(self.data, self.pos)
        self.pos += layout.size
        return dict(zip(names, values, strict=True))

    def bytes(self, size: int, field: str) -> bytes:
        self._need(size, field)
        start = self.pos
        self.pos += size
        return bytes(self.data[start : self.pos])

    def array(self, dtype: str, count: int, field: str) -> np.ndarray:
        """A read-only numpy view of ``count`` big-endian items (no copy, no allocation)."""
        item = np.dtype(dtype)
        self._need(count * item.itemsize, field)
        view = np.frombuffer(self.data, dtype=item, count=count, offset=self.pos)
        self.pos += count * item.itemsize
        return view

    def sized_block(self, length: int, item_size: int, field: str, length_offset: int) -> int:
        """Validate a declared byte length against the buffer; return the item count."""
        if length % item_size:
            raise PnmFormatError(
                field, length_offset, f"length {length} is not a multiple of {item_size}"
            )
        if length > self.remaining:
            raise PnmFormatError(
                field,
                length_offset,
                f"declares {length} bytes but only {self.remaining} follow",
            )
        return length // item_size
