"""DOCSIS PNM bulk-data file formats: parsers and typed results (plain Python, no Django).

``parse(data)`` reads the header and dispatches on the file-type code. Malformed input of
any kind raises ``PnmFormatError`` naming the field and byte offset.
"""

from __future__ import annotations

from collections.abc import Callable

from captures.pnm.common import SubcarrierGrid
from captures.pnm.cursor import Cursor
from captures.pnm.errors import PnmFormatError
from captures.pnm.fec import FecProfileSeries, FecSummary, parse_fec_summary
from captures.pnm.header import TEST_TYPE_NAMES, FileType, PnmHeader, read_header
from captures.pnm.histogram import Histogram, parse_histogram
from captures.pnm.modulation import ModulationProfile, Profile, parse_modulation_profile
from captures.pnm.ofdm import (
    ChannelEstimation,
    Constellation,
    RxMer,
    parse_channel_estimation,
    parse_constellation,
    parse_rxmer,
)
from captures.pnm.preeq import UsPreEqualizer, parse_us_pre_equalizer
from captures.pnm.spectrum import (
    SnmpSpectrumSegment,
    SpectrumAnalysis,
    parse_snmp_spectrum,
    parse_spectrum_analysis,
)
from captures.pnm.symbol import SymbolCapture, parse_symbol_capture

PnmFile = (
    SymbolCapture
    | ChannelEstimation
    | Constellation
    | RxMer
    | Histogram
    | UsPreEqualizer
    | FecSummary
    | SpectrumAnalysis
    | ModulationProfile
)

PARSERS: dict[FileType, Callable[[PnmHeader, Cursor], PnmFile]] = {
    FileType.SYMBOL_CAPTURE: parse_symbol_capture,
    FileType.CHANNEL_ESTIMATION: parse_channel_estimation,
    FileType.CONSTELLATION: parse_constellation,
    FileType.RXMER: parse_rxmer,
    FileType.HISTOGRAM: parse_histogram,
    FileType.US_PRE_EQUALIZER: parse_us_pre_equalizer,
    FileType.US_PRE_EQUALIZER_LAST: parse_us_pre_equalizer,
    FileType.FEC_SUMMARY: parse_fec_summary,
    FileType.SPECTRUM_ANALYSIS: parse_spectrum_analysis,
    FileType.MODULATION_PROFILE: parse_modulation_profile,
}


def parse_header(data: bytes) -> PnmHeader:
    """Only the common header: cheap enough to check an upload against its expected test."""
    return read_header(Cursor(data))


def parse(data: bytes) -> PnmFile:
    """Parse a whole PNM file (``PNN`` or legacy ``PNM`` header) into its typed result."""
    cursor = Cursor(data)
    header = read_header(cursor)
    return PARSERS[header.file_type](header, cursor)


__all__ = [
    "PARSERS",
    "TEST_TYPE_NAMES",
    "ChannelEstimation",
    "Constellation",
    "FecProfileSeries",
    "FecSummary",
    "FileType",
    "Histogram",
    "ModulationProfile",
    "PnmFile",
    "PnmFormatError",
    "PnmHeader",
    "Profile",
    "RxMer",
    "SnmpSpectrumSegment",
    "SpectrumAnalysis",
    "SubcarrierGrid",
    "SymbolCapture",
    "UsPreEqualizer",
    "parse",
    "parse_header",
    "parse_snmp_spectrum",
]
