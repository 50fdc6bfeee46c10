"""PNG plots of analyses and of single PNM files (matplotlib, headless Agg).

Figures are built with ``matplotlib.figure.Figure`` and never registered with pyplot, so
nothing keeps them alive after the PNG bytes are returned.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from captures.analysis import AnalysisResult, AnalysisType
from captures.pnm import (
    ChannelEstimation,
    Constellation,
    FecSummary,
    Histogram,
    ModulationProfile,
    PnmFile,
    RxMer,
    SpectrumAnalysis,
    SymbolCapture,
    UsPreEqualizer,
)
from captures.pnm.modulation import bits_per_symbol

WIDTH_IN, ROW_HEIGHT_IN, DPI = 10.0, 3.6, 100
MHZ = 1e6


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    figure.clear()
    return buffer.getvalue()


def _figure(rows: int) -> tuple[Figure, list]:
    figure = Figure(figsize=(WIDTH_IN, ROW_HEIGHT_IN * rows), layout="constrained")
    return figure, list(np.atleast_1d(figure.subplots(rows, 1)))


def _label(series_unit: str) -> str:
    return "group delay (µs)" if series_unit == "s" else f"value ({series_unit})"


def analysis_png(result: AnalysisResult) -> bytes:
    """One panel per channel: min/avg/max bands, or the time x subcarrier heat map."""
    figure, axes = _figure(len(result.channels))
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
    return _png(figure)


def _plot_rxmer(parsed: RxMer, axes: list) -> None:
    axes[0].plot(parsed.grid.frequencies() / MHZ, parsed.values_db, linewidth=0.6)
    axes[0].set_ylabel("RxMER (dB)")
    axes[0].set_xlabel("frequency (MHz)")


def _plot_response(parsed: ChannelEstimation | UsPreEqualizer, axes: list) -> None:
    freq = parsed.grid.frequencies() / MHZ
    axes[0].plot(freq, parsed.magnitude_db, linewidth=0.6)
    axes[0].set_ylabel("|H| (dB)")
    axes[1].plot(freq, parsed.group_delay_s * 1e6, linewidth=0.6)
    axes[1].set_ylabel("group delay (µs)")
    axes[1].set_xlabel("frequency (MHz)")


def _plot_constellation(parsed: Constellation | SymbolCapture, axes: list) -> None:
    points = parsed.points if isinstance(parsed, Constellation) else parsed.iq
    real, imag = (points.real, points.imag) if points.ndim == 1 else (points[:, 0], points[:, 1])
    axes[0].scatter(real, imag, s=1)
    axes[0].set_aspect("equal", adjustable="datalim")


def _plot_histogram(parsed: Histogram, axes: list) -> None:
    axes[0].bar(np.arange(parsed.hit_counts.size), parsed.hit_counts, width=1.0)
    axes[0].set_ylabel("hits")


def _plot_fec(parsed: FecSummary, axes: list) -> None:
    for profile in parsed.profiles:
        label = "NCP" if profile.profile_id == 255 else f"profile {profile.profile_id}"
        axes[0].plot(profile.timestamps, profile.codeword_error_rate, label=label, linewidth=0.8)
    axes[0].set_ylabel("codeword error rate")
    axes[0].legend(loc="upper right")


def _plot_spectrum(parsed: SpectrumAnalysis, axes: list) -> None:
    axes[0].plot(parsed.frequencies() / MHZ, parsed.amplitudes_db.ravel(), linewidth=0.5)
    axes[0].set_ylabel("amplitude (dB)")
    axes[0].set_xlabel("frequency (MHz)")


def _plot_modulation(parsed: ModulationProfile, axes: list) -> None:
    for profile in parsed.profiles:
        freq = parsed.grid(profile).frequencies() / MHZ
        bits = bits_per_symbol(profile.modulation_codes())
        axes[0].step(freq, bits, where="post", label=f"profile {profile.profile_id}")
    axes[0].set_ylabel("bits per symbol")
    axes[0].set_xlabel("frequency (MHz)")
    axes[0].legend(loc="lower right")


PLOTTERS: dict[type, tuple[int, Callable]] = {
    RxMer: (1, _plot_rxmer),
    ChannelEstimation: (2, _plot_response),
    UsPreEqualizer: (2, _plot_response),
    Constellation: (1, _plot_constellation),
    SymbolCapture: (1, _plot_constellation),
    Histogram: (1, _plot_histogram),
    FecSummary: (1, _plot_fec),
    SpectrumAnalysis: (1, _plot_spectrum),
    ModulationProfile: (1, _plot_modulation),
}


def file_png(parsed: PnmFile) -> bytes:
    """The plot a user expects for one file of any PNM type."""
    rows, plot = PLOTTERS[type(parsed)]
    figure, axes = _figure(rows)
    plot(parsed, axes)
    axes[0].set_title(f"{parsed.header.test_type}  {parsed.mac_address}")
    for ax in axes:
        ax.grid(alpha=0.3)
    return _png(figure)
