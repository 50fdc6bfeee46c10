"""Analyses of single PNM files, and the OFDM profile performance of a capture group.

Pure functions on the parsed files of ``captures.pnm`` (no Django): each returns a result
with ``as_dict()`` (JSON-safe, NaN as null), ``csv_rows()`` (header row first) and
``png()``. ``analyse_file`` picks the analysis for a file's type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from captures.analyses.base import FileAnalysis
from captures.analyses.bitloading import analyse_bit_loading
from captures.analyses.constellation import analyse_constellation
from captures.analyses.fec import analyse_fec_summary
from captures.analyses.histogram import analyse_histogram
from captures.analyses.preeq import analyse_pre_equalizer
from captures.analyses.response import analyse_channel_estimation, analyse_rxmer
from captures.analyses.spectrum import analyse_snmp_spectrum, analyse_spectrum
from captures.analyses.symbol import analyse_symbol_capture
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

ANALYSES: dict[type, Callable[[Any], FileAnalysis]] = {
    RxMer: analyse_rxmer,
    ChannelEstimation: analyse_channel_estimation,
    Constellation: analyse_constellation,
    Histogram: analyse_histogram,
    UsPreEqualizer: analyse_pre_equalizer,
    FecSummary: analyse_fec_summary,
    SpectrumAnalysis: analyse_spectrum,
    ModulationProfile: analyse_bit_loading,
    SymbolCapture: analyse_symbol_capture,
}


def analyse_file(parsed: PnmFile) -> FileAnalysis:
    """The analysis that fits the file's type."""
    return ANALYSES[type(parsed)](parsed)


__all__ = ["ANALYSES", "FileAnalysis", "analyse_file", "analyse_snmp_spectrum"]
