"""PNM parsers against every real sample file, checked against figures derived by hand."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from captures.pnm import (
    ChannelEstimation,
    Constellation,
    FecSummary,
    FileType,
    Histogram,
    ModulationProfile,
    PnmFormatError,
    RxMer,
    SpectrumAnalysis,
    SymbolCapture,
    UsPreEqualizer,
    parse,
    parse_header,
    parse_snmp_spectrum,
)
from captures.pnm.common import group_delay_s

DATA = Path(__file__).parent / "data" / "pnm"
DEMO_RXMER = sorted(DATA.glob("ds_ofdm_rxmer_per_subcar_*.bin"))


F = TypeVar("F")


def parse_as(kind: type[F], data: bytes) -> F:
    """``parse`` for a file whose type the test knows: checks it, and types the result."""
    result = parse(data)
    assert isinstance(result, kind), type(result)
    return result


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def u32(data: bytes, offset: int) -> int:
    return struct.unpack_from(">I", data, offset)[0]


def legacy(data: bytes) -> bytes:
    """The same file with the older unversioned "PNM" header (no version bytes)."""
    return b"PNM" + data[3:4] + data[6:]


def symbol_capture_sample() -> bytes:
    """The synthetic PNN1 file in data/pnm (no real one exists): 4096 random I/Q pairs."""
    iq = np.random.default_rng(1).integers(-2000, 2000, size=8192, dtype=np.int16)
    data = iq.astype(">i2").tobytes()
    mac = bytes.fromhex("aabbccddeeff")
    return (
        b"PNN\x01\x01\x00"
        + struct.pack(">I", 1764820700)
        + struct.pack(">B6sIIHHI", 193, mac, 204_800_000, 4096, 7, 42, len(data))
        + data
    )


EXPECTED_TYPES = {
    "synthetic_symbol_capture.bin": (FileType.SYMBOL_CAPTURE, SymbolCapture),
    "rxmer.bin": (FileType.RXMER, RxMer),
    **{path.name: (FileType.RXMER, RxMer) for path in DEMO_RXMER},
    "channel_estimation.bin": (FileType.CHANNEL_ESTIMATION, ChannelEstimation),
    "const_display.bin": (FileType.CONSTELLATION, Constellation),
    "histogram.bin": (FileType.HISTOGRAM, Histogram),
    "us_pre_equalizer_coef.bin": (FileType.US_PRE_EQUALIZER, UsPreEqualizer),
    "us_pre_equalizer_coef_last.bin": (FileType.US_PRE_EQUALIZER_LAST, UsPreEqualizer),
    "fec_summary.bin": (FileType.FEC_SUMMARY, FecSummary),
    "spectrum_analyzer.bin": (FileType.SPECTRUM_ANALYSIS, SpectrumAnalysis),
    "modulation_profile.bin": (FileType.MODULATION_PROFILE, ModulationProfile),
}


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED_TYPES.items()))
def test_every_sample_parses_to_its_type(name: str, expected: tuple) -> None:
    data = sample(name)
    file_type, cls = expected
    result = parse(data)
    assert isinstance(result, cls)
    assert result.header.file_type is file_type
    assert result.header.magic == "PNN"
    assert (result.header.major_version, result.header.minor_version) == (1, 0)
    if file_type is FileType.FEC_SUMMARY:
        assert result.header.capture_time is None
    else:
        assert result.header.capture_time == u32(data, 6)
    assert parse_header(data) == result.header
    summary = result.as_dict(data=False)
    assert summary["header"]["file_type"] == int(file_type)


@pytest.mark.parametrize("path", [DATA / "rxmer.bin", *DEMO_RXMER], ids=lambda p: p.name)
def test_rxmer_values_and_frequency_grid(path: Path) -> None:
    data = path.read_bytes()
    result = parse_as(RxMer, data)
    f0, first, spacing_khz, length = struct.unpack_from(">IHBI", data, 17)
    assert result.channel_id == data[10]
    assert result.mac_address == ":".join(f"{b:02x}" for b in data[11:17])
    assert result.grid.count == length == len(data) - 28
    freqs = result.grid.frequencies()
    for i in (0, 1, length // 2, length - 1):
        assert freqs[i] == f0 + (first + i) * spacing_khz * 1000
        assert result.values_db[i] == data[28 + i] / 4
    codes = list(data[28:])
    stats: dict[str, Any] = result.stats()
    assert stats["mean"] == pytest.approx(sum(codes) / len(codes) / 4)
    assert stats["min"] == min(codes) / 4
    assert stats["max"] == max(codes) / 4
    mean = sum(codes) / len(codes)
    assert stats["std"] == pytest.approx(
        math.sqrt(sum((c - mean) ** 2 for c in codes) / len(codes)) / 4
    )
    ordered = sorted(codes)
    assert stats["percentiles"]["p50"] == pytest.approx(ordered[len(ordered) // 2] / 4, abs=0.25)


def test_rxmer_demo_sample_header() -> None:
    result = parse_as(RxMer, DEMO_RXMER[0].read_bytes())
    assert result.channel_id == 193
    assert result.mac_address == "aa:bb:cc:dd:ee:ff"
    assert result.header.capture_time == 1764820676
    assert result.grid.count == 7600
    assert result.grid.spacing_hz == 25_000


def test_rxmer_excluded_subcarriers_are_missing_not_63_5_db() -> None:
    data = bytearray(sample("rxmer.bin"))
    data[28 + 5] = data[28 + 100] = data[-1] = 0xFF
    result = parse_as(RxMer, bytes(data))
    assert np.isnan(result.values_db[[5, 100, -1]]).all()
    assert result.excluded_count == 3
    stats: dict[str, Any] = result.stats()
    assert stats["excluded"] == 3
    assert stats["max"] < 63.5
    measured = [c for i, c in enumerate(data[28:]) if i not in (5, 100, len(data) - 29)]
    assert stats["mean"] == pytest.approx(sum(measured) / len(measured) / 4)
    body: dict[str, Any] = result.as_dict()
    assert body["rxmer_db"][5] is None


def test_symbol_capture_fields_and_samples() -> None:
    data = sample("synthetic_symbol_capture.bin")
    assert data == symbol_capture_sample()
    result = parse_as(SymbolCapture, data)
    assert (result.channel_id, result.mac_address) == (193, "aa:bb:cc:dd:ee:ff")
    assert (result.sample_rate_hz, result.fft_length) == (204_800_000, 4096)
    assert (result.trigger_group_id, result.capture_transaction_id) == (7, 42)
    assert result.iq.shape == (u32(data, 29) // 4, 2) == (4096, 2)
    for i in (0, 1, 4095):
        assert tuple(result.iq[i]) == struct.unpack_from(">hh", data, 33 + 4 * i)
    body: dict[str, Any] = result.as_dict()
    assert body["stats"]["samples"] == 4096
    assert body["i"][1] == struct.unpack_from(">h", data, 37)[0]


def test_channel_estimation_coefficients_s2_13() -> None:
    data = sample("channel_estimation.bin")
    result = parse_as(ChannelEstimation, data)
    assert result.grid.count == u32(data, 24) // 4 == 7480
    for i in (0, 1, 3000, 7479):
        re, im = struct.unpack_from(">hh", data, 28 + 4 * i)
        assert result.coefficients[i] == complex(re / 8192, im / 8192)
        assert result.magnitude_db[i] == pytest.approx(20 * math.log10(math.hypot(re, im) / 8192))
    stats: dict[str, Any] = result.stats()
    assert stats["magnitude_db"]["max"] == pytest.approx(float(np.nanmax(result.magnitude_db)))


def test_group_delay_of_a_pure_delay_is_that_delay() -> None:
    tau = 1.5e-6
    freqs = 600e6 + np.arange(4000) * 25e3
    coefficients = np.exp(-2j * np.pi * freqs * tau)
    assert group_delay_s(coefficients, freqs) == pytest.approx(np.full(4000, tau), rel=1e-6)


def test_constellation_header_and_points() -> None:
    data = sample("const_display.bin")
    result = parse_as(Constellation, data)
    assert (result.modulation_order, result.sample_symbols, result.spacing_hz) == (7, 8192, 25_000)
    assert result.points.size == u32(data, 26) // 4 == 8192
    re, im = struct.unpack_from(">hh", data, 30)
    assert result.points[0] == complex(re / 8192, im / 8192)


def test_histogram_counts() -> None:
    data = sample("histogram.bin")
    result = parse_as(Histogram, data)
    assert result.symmetry == data[16]
    assert result.dwell_counts.tolist() == [u32(data, 21)]
    assert result.hit_counts.size == 256
    assert result.hit_counts[0] == u32(data, 29)
    summary: dict[str, Any] = result.as_dict(data=False)
    assert summary["stats"]["total_hits"] == sum(u32(data, 29 + 4 * i) for i in range(256))


@pytest.mark.parametrize(
    ("name", "frac_bits"),
    [("us_pre_equalizer_coef.bin", 13), ("us_pre_equalizer_coef_last.bin", 14)],
)
def test_us_pre_equalizer(name: str, frac_bits: int) -> None:
    data = sample(name)
    result = parse_as(UsPreEqualizer, data)
    assert result.channel_id == 41
    assert result.cmts_mac_address == "00:90:f0:05:00:00"
    assert result.grid.count == 1776
    f0, first, spacing_khz = struct.unpack_from(">IHB", data, 23)
    assert result.grid.frequencies()[10] == f0 + (first + 10) * spacing_khz * 1000
    re, im = struct.unpack_from(">hh", data, 34 + 4 * 7)
    scale = 1 << frac_bits
    assert result.coefficients[7] == complex(re / scale, im / scale)


def test_pre_equalizer_s2_13_puts_pnn6_near_unity_gain() -> None:
    result = parse_as(UsPreEqualizer, sample("us_pre_equalizer_coef.bin"))
    stats: dict[str, Any] = result.stats()
    assert abs(stats["magnitude_db"]["mean"]) < 1.0


def test_fec_summary_series_and_error_rates() -> None:
    data = sample("fec_summary.bin")
    result = parse_as(FecSummary, data)
    assert (result.channel_id, result.summary_type, result.step_s) == (160, 2, 1)
    assert [p.profile_id for p in result.profiles] == [255, 0, 1, 2, 3]
    assert all(p.records.shape == (600, 4) for p in result.profiles)
    assert result.capture_time == u32(data, 18)
    # Profile 0 starts at 15 + (3 + 600*16); recompute its totals straight from the bytes.
    base = 15 + 3 + 9600 + 3
    records = [struct.unpack_from(">IIII", data, base + 16 * i) for i in range(600)]
    summary = result.profiles[1].summary()
    assert summary["total_codewords"] == sum(r[1] for r in records)
    assert summary["corrected_codewords"] == sum(r[2] for r in records)
    assert summary["uncorrectable_codewords"] == sum(r[3] for r in records)
    expected = [r[3] / r[1] if r[1] else None for r in records]
    got = result.profiles[1].codeword_error_rate
    assert [None if math.isnan(v) else v for v in got] == expected
    assert (
        result.profiles[4 - 1].summary()["codeword_error_rate"] is None
    )  # profile 2: no codewords


def test_fec_summary_error_rate_with_uncorrectables() -> None:
    head = (
        b"PNN\x08\x01\x00"
        + bytes([7])
        + bytes(6)
        + bytes([2, 1])
        + bytes([0])
        + struct.pack(">H", 2)
    )
    records = struct.pack(">IIII", 100, 1000, 10, 5) + struct.pack(">IIII", 101, 0, 0, 0)
    result = parse_as(FecSummary, head + records)
    series = result.profiles[0]
    assert series.codeword_error_rate[0] == pytest.approx(0.005)
    assert math.isnan(series.codeword_error_rate[1])
    assert series.summary()["codeword_error_rate"] == pytest.approx(5 / 1000)
    assert result.capture_time == 100


def test_spectrum_segments_and_frequencies() -> None:
    data = sample("spectrum_analyzer.bin")
    result = parse_as(SpectrumAnalysis, data)
    first, last, span = struct.unpack_from(">III", data, 17)
    assert result.segments == (last - first) // span + 1 == 81
    assert result.amplitudes_db.shape == (81, 256)
    assert result.amplitudes_db[0, 0] == struct.unpack_from(">h", data, 39)[0] / 100
    freqs = result.frequencies()
    assert freqs.size == 81 * 256
    assert freqs[128] == pytest.approx(first)  # the middle bin of segment 0 is its centre
    assert freqs[80 * 256 + 128] == pytest.approx(last)


def test_snmp_spectrum_concatenation() -> None:
    segments = parse_snmp_spectrum(sample("spectrum_analyzer_snmp.bin"))
    assert len(segments) == 42020 // (20 + 2 * 100)
    assert segments[0].center_hz == 1_027_000_000
    assert segments[0].amplitudes_db.size == 100
    with pytest.raises(PnmFormatError, match="magic"):
        parse(sample("spectrum_analyzer_snmp.bin"))


def test_modulation_profile_covers_the_channel() -> None:
    data = sample("modulation_profile.bin")
    result = parse_as(ModulationProfile, data)
    assert result.mac_address == "00:50:f1:12:df:0c"
    assert [p.profile_id for p in result.profiles] == [3, 2, 1, 0]
    chan_est = parse_as(ChannelEstimation, sample("channel_estimation.bin"))
    for profile in result.profiles:
        assert result.grid(profile).count == chan_est.grid.count
        assert result.grid(profile).frequencies()[0] == chan_est.grid.frequencies()[0]
    # The data block is exactly the profiles: id (1) + length (2) + chunks each.
    lengths, offset = [], 29
    for _ in range(4):
        lengths.append(struct.unpack_from(">H", data, offset + 1)[0])
        offset += 3 + lengths[-1]
    assert offset == len(data) == 29 + u32(data, 25)
    best = result.profiles[0].summary()
    assert best["mean_bits_per_data_subcarrier"] == 12.0  # profile 3: 4096-QAM


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPES))
def test_legacy_pnm_header_parses_like_pnn(name: str) -> None:
    data = sample(name)
    modern, old = parse(data), parse(legacy(data))
    assert old.header.magic == "PNM"
    assert old.header.major_version is None
    assert old.header.capture_time == modern.header.capture_time
    modern_dict: dict[str, Any] = modern.as_dict()
    assert old.as_dict() == {
        **modern_dict,
        "header": {
            **modern_dict["header"],
            "magic": "PNM",
            "major_version": None,
            "minor_version": None,
        },
    }


@pytest.mark.parametrize(
    ("mutate", "field", "offset"),
    [
        (lambda d: d[:2], "magic", 0),
        (lambda d: b"XYZ" + d[3:], "magic", 0),
        (lambda d: d[:3] + b"\x0b" + d[4:], "file_type", 3),
        (lambda d: d[:9], "capture_time", 6),
        (lambda d: d[:20], "zero_frequency_hz", 17),
        (lambda d: d[:23] + b"\x07" + d[24:], "subcarrier_spacing", 23),
        (lambda d: d[:24] + struct.pack(">I", 0xFFFFFFFF) + d[28:], "data_length", 24),
        (lambda d: d[:-1], "data_length", 24),
    ],
)
def test_malformed_rxmer_names_field_and_offset(mutate, field: str, offset: int) -> None:
    with pytest.raises(PnmFormatError) as caught:
        parse(mutate(sample("rxmer.bin")))
    assert (caught.value.field, caught.value.offset) == (field, offset)
    assert f"at byte {offset}" in str(caught.value)


def test_malformed_chan_est_length_not_multiple_of_four() -> None:
    data = sample("channel_estimation.bin")
    bad = data[:24] + struct.pack(">I", u32(data, 24) - 2) + data[28:]
    with pytest.raises(PnmFormatError, match="multiple of 4") as caught:
        parse(bad)
    assert caught.value.field == "data_length"


def test_truncated_fec_summary_names_the_record_block() -> None:
    with pytest.raises(PnmFormatError) as caught:
        parse(sample("fec_summary.bin")[:5000])
    assert caught.value.field == "codeword_sets"
    assert caught.value.offset == 18


def test_modulation_profile_with_unknown_chunk_schema() -> None:
    data = bytearray(sample("modulation_profile.bin"))
    data[32] = 9  # first chunk's schema byte
    with pytest.raises(PnmFormatError) as caught:
        parse(bytes(data))
    assert (caught.value.field, caught.value.offset) == ("chunk_schema", 32)


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPES))
def test_every_truncation_of_the_header_region_is_a_clean_error(name: str) -> None:
    data = sample(name)
    for cut in [*range(0, 64), len(data) - 1]:
        with pytest.raises(PnmFormatError):
            parse(data[:cut])
