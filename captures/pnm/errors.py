"""The one exception every PNM parser raises for malformed input."""

from __future__ import annotations


class PnmFormatError(ValueError):
    """A PNM file that does not match its declared layout.

    Carries the field being read and its absolute byte offset, so a bad upload can be
    diagnosed from the log line alone.
    """

    def __init__(self, field: str, offset: int, reason: str) -> None:
        self.field = field
        self.offset = offset
        self.reason = reason
        super().__init__(f"{field} at byte {offset}: {reason}")
