"""The common PNM file header: "PNN" (versioned) and the older unversioned "PNM" form."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from captures.pnm.cursor import Cursor
from captures.pnm.errors import PnmFormatError


class FileType(enum.IntEnum):
    """File-type code in byte 3 of the header (DOCS-PNM-MIB / CM-OSSI)."""

    SYMBOL_CAPTURE = 1
    CHANNEL_ESTIMATION = 2
    CONSTELLATION = 3
    RXMER = 4
    HISTOGRAM = 5
    US_PRE_EQUALIZER = 6
    US_PRE_EQUALIZER_LAST = 7
    FEC_SUMMARY = 8
    SPECTRUM_ANALYSIS = 9
    MODULATION_PROFILE = 10


# PyPNM's ``pnm_test_type`` names, as they appear in transactions.json manifests.
TEST_TYPE_NAMES: dict[FileType, str] = {
    FileType.SYMBOL_CAPTURE: "DS_OFDM_SYMBOL_CAPTURE",
    FileType.CHANNEL_ESTIMATION: "DS_OFDM_CHAN_EST_COEF",
    FileType.CONSTELLATION: "DS_CONSTELLATION_DISP",
    FileType.RXMER: "DS_OFDM_RXMER_PER_SUBCAR",
    FileType.HISTOGRAM: "DS_HISTOGRAM",
    FileType.US_PRE_EQUALIZER: "US_PRE_EQUALIZER_COEF",
    FileType.US_PRE_EQUALIZER_LAST: "US_PRE_EQUALIZER_COEF_LAST_UPDATE",
    FileType.FEC_SUMMARY: "DS_OFDM_FEC_SUMMARY",
    FileType.SPECTRUM_ANALYSIS: "SPECTRUM_ANALYZER",
    FileType.MODULATION_PROFILE: "DS_OFDM_MODULATION_PROFILE",
}

HEADER_SPEC = [("magic", "3s"), ("file_type", "B")]


@dataclass(frozen=True, slots=True)
class PnmHeader:
    """Fields common to every file. ``version`` is None for the legacy "PNM" form;
    ``capture_time`` is None where the layout has none (FEC summary)."""

    magic: str
    file_type: FileType
    major_version: int | None
    minor_version: int | None
    capture_time: int | None

    @property
    def test_type(self) -> str:
        return TEST_TYPE_NAMES[self.file_type]

    def as_dict(self) -> dict[str, object]:
        return {
            "magic": self.magic,
            "file_type": int(self.file_type),
            "file_type_name": self.file_type.name,
            "test_type": self.test_type,
            "major_version": self.major_version,
            "minor_version": self.minor_version,
            "capture_time": self.capture_time,
        }


def read_header(cursor: Cursor) -> PnmHeader:
    """Read the common header and leave the cursor at the first type-specific byte.

    "PNN": magic, type, major, minor, then a uint32 capture time (absent for type 8).
    "PNM": magic, type, then the capture time (absent for type 8) with no version bytes.
    """
    start = cursor.pos
    head = cursor.fields(HEADER_SPEC)
    magic = head["magic"]
    if magic not in (b"PNN", b"PNM"):
        raise PnmFormatError("magic", start, f"expected b'PNN' or b'PNM', got {magic!r}")
    try:
        file_type = FileType(head["file_type"])
    except ValueError:
        raise PnmFormatError(
            "file_type", start + 3, f"unknown file-type code {head['file_type']}"
        ) from None
    major = minor = None
    if magic == b"PNN":
        version = cursor.fields([("major_version", "B"), ("minor_version", "B")])
        major, minor = version["major_version"], version["minor_version"]
    capture_time = None
    if file_type is not FileType.FEC_SUMMARY:
        capture_time = cursor.fields([("capture_time", "I")])["capture_time"]
    return PnmHeader(magic.decode(), file_type, major, minor, capture_time)
