"""What every analysis result offers, and the figure plumbing their PNGs share.

Figures are ``matplotlib.figure.Figure`` objects never registered with pyplot, so nothing
keeps them alive once the PNG bytes are returned.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WIDTH_IN, ROW_HEIGHT_IN, DPI = 10.0, 3.6, 100
MHZ = 1e6


class FileAnalysis(Protocol):
    """An analysis result: a name, JSON, CSV rows (header first) and a PNG."""

    kind: str

    def as_dict(self) -> dict[str, object]: ...

    def csv_rows(self) -> Iterator[list[object]]: ...

    def png(self) -> bytes: ...


def number(value: float | np.floating | None, digits: int = 4) -> float | None:
    """A float for JSON: rounded, NaN/inf as None (missing)."""
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def cell(value: float | None, digits: int = 4) -> object:
    """A CSV cell: missing values are empty, not "nan"."""
    rounded = number(value, digits)
    return "" if rounded is None else rounded


def csv_bytes(rows: Iterable[list[object]]) -> Iterator[bytes]:
    """CSV lines as bytes, one row at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


def time_text(epoch: int | None) -> str:
    """A capture time for a title: UTC ISO, or "time unknown"."""
    if epoch is None:
        return "time unknown"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def new_figure(rows: int, columns: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(WIDTH_IN, ROW_HEIGHT_IN * rows), layout="constrained")
    return figure, list(np.atleast_1d(figure.subplots(rows, columns)).ravel())


def to_png(figure: Figure, axes: Iterable[Axes] = ()) -> bytes:
    """Grid lines on ``axes``, then the PNG bytes; the figure is cleared."""
    for ax in axes:
        ax.grid(alpha=0.3)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    figure.clear()
    return buffer.getvalue()


def device_title(test: str, channel_id: int | None, mac: str | None, epoch: int | None) -> str:
    """The first line of every plot title: what, which channel and modem, when."""
    channel = "" if channel_id is None else f"  channel {channel_id}"
    modem = "" if mac is None else f"  {mac}"
    return f"{test}{channel}{modem}  {time_text(epoch)}"
