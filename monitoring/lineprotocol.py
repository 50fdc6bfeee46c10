"""InfluxDB line protocol, numeric fields only: ``measurement[,tag=v...] field=v[,...] [ts]``.

Plain Python (no Django) so it is tested on strings alone. Lines without backslashes or
quotes (what collectors send) take a fast path of plain ``str.split``; anything else goes
through an escape- and quote-aware splitter. String and boolean fields are rejected: an
instrument channel is a number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

PRECISION_NS = {"ns": 1, "n": 1, "us": 1_000, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_BOOLEANS = {"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"}


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, float]
    timestamp: int | None  # in the batch's precision; None means "when received"


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@cache
def layout_pattern(fields: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression for the usual shape of a line:
    ``measurement[,instrument=name] f1=v1,…,fn=vn [timestamp]`` with exactly these fields in
    this order and plain decimal values. Groups: measurement, instrument, the n values, the
    timestamp. Lines of any other shape go through ``parse_line``."""
    body = ",".join(f"{re.escape(name)}=({_NUMBER})" for name in fields)
    return re.compile(rf"([^,\s\\\"]+)(?:,instrument=([^,\s\\\"=]+))? {body}(?: (-?\d+))?")


def iter_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for every line that is not blank or a comment."""
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


def parse_line(line: str) -> Point:
    """Parse one line; ``ValueError`` says what is wrong with it."""
    if "\\" not in line and '"' not in line:
        try:
            return _parse_plain(line)
        except (ValueError, IndexError):
            pass  # the general parser below says precisely what is wrong
    return _parse_general(line)


def _parse_plain(line: str) -> Point:
    """The common case, no escapes or quotes: ``str.split`` only, no per-token calls."""
    sections = line.split()
    head = sections[0].split(",")
    tags = {}
    for item in head[1:]:
        key, value = item.split("=", 1)
        if not key or not value:
            raise ValueError
        tags[key] = value
    fields = {}
    for item in sections[1].split(","):
        key, value = item.split("=", 1)
        if not key:
            raise ValueError
        fields[key] = float(int(value[:-1])) if value[-1] in "iu" else float(value)
    if not head[0] or len(sections) > 3:
        raise ValueError
    return Point(head[0], tags, fields, int(sections[2]) if len(sections) == 3 else None)


def _parse_general(line: str) -> Point:
    plain = "\\" not in line and '"' not in line
    sections = [s for s in (line.split(" ") if plain else _split(line, " ", quotes=True)) if s]
    if len(sections) not in (2, 3):
        raise ValueError("expected 'measurement[,tags] fields [timestamp]'")
    head = _split(sections[0], ",", quotes=False)
    measurement = _unescape(head[0])
    if not measurement:
        raise ValueError("missing measurement")
    tags = {key: _unescape(value) for key, value in (_pair(item, "tag") for item in head[1:])}
    fields = {key: _number(key, value) for key, value in map(_field, _fields(sections[1]))}
    if not fields:
        raise ValueError("no fields")
    timestamp = None
    if len(sections) == 3:
        try:
            timestamp = int(sections[2])
        except ValueError:
            raise ValueError(f"timestamp {sections[2]!r} is not an integer") from None
    return Point(measurement, tags, fields, timestamp)


def _fields(section: str) -> list[str]:
    if "\\" in section or '"' in section:
        return _split(section, ",", quotes=True)
    return section.split(",")


def _field(item: str) -> tuple[str, str]:
    return _pair(item, "field")


def _pair(item: str, what: str) -> tuple[str, str]:
    parts = _split(item, "=", quotes=False, limit=1) if "\\" in item else item.split("=", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError(f"{what} {item!r} is not key=value")
    return _unescape(parts[0]), parts[1]


def _number(key: str, text: str) -> float:
    if text[0] == '"' or text in _BOOLEANS:
        raise ValueError(f"field {key!r} is not a number")
    try:
        if text[-1] in "iu":
            return float(int(text[:-1]))
        return float(text)
    except ValueError:
        raise ValueError(f"field {key!r} is not a number: {text!r}") from None


def _split(text: str, sep: str, *, quotes: bool, limit: int = -1) -> list[str]:
    """Split at ``sep`` unless escaped by a backslash or (with ``quotes``) inside quotes."""
    parts: list[str] = []
    current: list[str] = []
    escaped = quoted = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif quotes and char == '"':
            current.append(char)
            quoted = not quoted
        elif char == sep and not quoted and limit != 0:
            parts.append("".join(current))
            current = []
            limit -= 1
        else:
            current.append(char)
    if quoted:
        raise ValueError("unterminated quoted string")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            out.append(next(chars, "\\"))
        else:
            out.append(char)
    return "".join(out)
