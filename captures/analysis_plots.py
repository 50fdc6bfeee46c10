"""PNG plots of operation analyses and of single PNM files (matplotlib, headless Agg).

A single file's plot is its analysis's PNG (``captures.analyses``); the figure plumbing is
shared with those in ``captures.analyses.base``.
"""

from __future__ import annotations

from captures.analyses import analyse_file
from captures.analyses.base import MHZ, new_figure, to_png
from captures.analysis import AnalysisResult, AnalysisType
from captures.pnm import PnmFile


def _label(series_unit: str) -> str:
    return "group delay (µs)" if series_unit == "s" else f"value ({series_unit})"


def analysis_png(result: AnalysisResult) -> bytes:
    """One panel per channel: min/avg/max bands, or the time x subcarrier heat map."""
    figure, axes = new_figure(len(result.channels))
    for ax, series in zip(axes, result.channels, strict=True):
        scale = 1e6 if series.measure.unit == "s" else 1.0
        freq = series.frequency_hz / MHZ
        if result.analysis is AnalysisType.HEATMAP:
            matrix = series.matrix()
            image = ax.imshow(
                matrix,
                aspect="auto",
                origin="lower",
                interpolation="nearest",
                extent=(freq[0], freq[-1], 0, max(matrix.shape[0], 1)),
            )
            figure.colorbar(image, ax=ax, label=_label(series.measure.unit))
            ax.set_ylabel("capture #")
        else:
            low, high = series.extremes()
            ax.fill_between(freq, low * scale, high * scale, alpha=0.3, label="min-max")
            ax.plot(freq, series.average() * scale, linewidth=0.8, label="avg")
            ax.set_ylabel(_label(series.measure.unit))
            ax.legend(loc="lower right")
        ax.set_title(f"channel {series.channel_id}: {result.analysis} ({series.captures} captures)")
        ax.set_xlabel("frequency (MHz)")
    return to_png(figure, axes if result.analysis is not AnalysisType.HEATMAP else [])


def file_png(parsed: PnmFile) -> bytes:
    """The plot a user expects for one file of any PNM type: its analysis's PNG."""
    return analyse_file(parsed).png()
