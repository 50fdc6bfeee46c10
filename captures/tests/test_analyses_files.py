"""Each file analysis on the shared samples (and synthetic files of known content): the JSON
shape, a decoded PNG, and the figures against arithmetic on the raw bytes (offsets of
docsis-pnm.md §3), read here with struct and numpy, not through the parsers."""

from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captures.analyses import analyse_file, analyse_snmp_spectrum
from captures.analyses.base import FileAnalysis, csv_bytes
from captures.analyses.constellation import ideal_levels
from captures.pnm import parse, parse_snmp_spectrum

SAMPLES = Path(__file__).parent / "data" / "pnm"
HEADER = b"PNN%c\x01\x00" + struct.pack(">I", 1_764_820_000)
MAC = bytes.fromhex("a1b2c3d4e5f6")
SPEED_OF_LIGHT = 299_792_458.0


def raw(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def analysed(name: str) -> FileAnalysis:
    return analyse_file(parse(raw(name)))


def check_png(png: bytes, size: tuple[int, int] = (1000, 0)) -> Image.Image:
    """A real PNG of the expected width (and height, when given) with data drawn."""
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    assert image.width == size[0]
    if size[1]:
        assert image.height == size[1]
    pixels = np.asarray(image.convert("RGB")).astype(int)
    # Axes, ticks and text are black or grey: coloured pixels are plotted data.
    coloured = np.count_nonzero(pixels.max(axis=2) - pixels.min(axis=2) > 60)
    assert coloured > 300, "no data drawn"
    return image


def check_json(result: FileAnalysis, kind: str) -> dict:
    body = result.as_dict()
    assert body["analysis"] == kind
    json.dumps(body, allow_nan=False)  # NaN must be null
    return body


def csv_table(result: FileAnalysis) -> list[str]:
    return b"".join(csv_bytes(result.csv_rows())).decode().splitlines()


# --- spectrum -------------------------------------------------------------------------


def test_spectrum_file_levels_and_peak() -> None:
    data = raw("spectrum_analyzer.bin")
    first, _last, span, bins, enbw, window, length = struct.unpack(">IIIHHHI", data[17:39])
    levels = np.frombuffer(data[39 : 39 + length], ">i2").reshape(-1, bins) / 100.0
    segment, bin_ = np.unravel_index(np.argmax(levels), levels.shape)
    peak_hz = first + segment * span + (bin_ - bins / 2) * span / bins

    result = analysed("spectrum_analyzer.bin")
    body = check_json(result, "spectrum")
    assert (body["source"], body["unit"], body["channel_id"]) == ("file", "dBmV", data[10])
    assert body["equivalent_noise_bandwidth_hundredths_bin"] == enbw == 110
    assert body["window_function"] == "hann"
    assert window == 1
    assert len(body["segments"]) == levels.shape[0]
    summary = body["summary"]
    assert summary["max_dbmv"] == pytest.approx(levels.max())
    assert summary["min_dbmv"] == pytest.approx(levels.min())
    assert summary["mean_dbmv"] == pytest.approx(levels.mean(), abs=1e-4)
    assert summary["peak_frequency_hz"] == pytest.approx(peak_hz, abs=0.1)
    second = body["segments"][1]
    assert second["center_hz"] == first + span
    assert second["max_dbmv"] == pytest.approx(levels[1].max())
    rows = csv_table(result)
    assert rows[0] == "segment,frequency_hz,level_dbmv"
    assert len(rows) == 1 + levels.size
    check_png(result.png(), (1000, 360))


def test_spectrum_snmp_walk_per_segment() -> None:
    data = raw("spectrum_analyzer_snmp.bin")
    segments, pos = [], 0
    while pos < len(data):
        centre, _span, count, spacing, _rbw = struct.unpack(">5I", data[pos : pos + 20])
        levels = np.frombuffer(data[pos + 20 : pos + 20 + 2 * count], ">i2") / 100.0
        segments.append((centre, spacing, levels))
        pos += 20 + 2 * count
    best = max(range(len(segments)), key=lambda i: segments[i][2].max())
    centre, spacing, levels = segments[best]
    peak_hz = centre + (int(np.argmax(levels)) - levels.size / 2) * spacing

    result = analyse_snmp_spectrum(parse_snmp_spectrum(data), capture_time=1_764_820_000)
    body = check_json(result, "spectrum")
    assert body["source"] == "snmp"
    assert body["capture_time"] == 1_764_820_000
    assert len(body["segments"]) == len(segments) == 191
    everything = np.concatenate([s[2] for s in segments])
    assert body["summary"]["max_dbmv"] == pytest.approx(everything.max())
    assert body["summary"]["mean_dbmv"] == pytest.approx(everything.mean(), abs=1e-4)
    assert body["summary"]["peak_frequency_hz"] == pytest.approx(peak_hz)
    assert body["segments"][best]["peak_frequency_hz"] == pytest.approx(peak_hz)
    check_png(result.png())


# --- constellation --------------------------------------------------------------------


def test_constellation_sample_is_256_qam_with_its_mer() -> None:
    """Header code 7 is qam256 (DsOfdmModulationType); decided on the odd-integer grid
    scaled by sqrt(170), the mean power of 256-QAM's ±1..±15 levels."""
    data = raw("const_display.bin")
    code, symbols, _spacing, length = struct.unpack(">HHBI", data[21:30])
    iq = np.frombuffer(data[30 : 30 + length], ">i2").astype(float) / 8192
    soft = (iq[0::2] + 1j * iq[1::2]) * math.sqrt(170)
    decided = np.clip(2 * np.floor(soft.real / 2) + 1, -15, 15) + 1j * np.clip(
        2 * np.floor(soft.imag / 2) + 1, -15, 15
    )
    expected = 10 * np.log10(np.mean(np.abs(decided) ** 2) / np.mean(np.abs(soft - decided) ** 2))

    result = analysed("const_display.bin")
    body = check_json(result, "constellation")
    assert (body["modulation_code"], body["modulation_order"], code) == (7, 256, 7)
    assert body["points"] == soft.size == 8192
    assert body["sample_symbols"] == symbols
    assert body["mer_db"] == pytest.approx(expected, abs=1e-3)
    assert 39 < body["mer_db"] < 41
    assert len(body["ideal_i"]) == 256
    assert np.mean(np.square(body["ideal_i"]) + np.square(body["ideal_q"])) == pytest.approx(
        1, abs=1e-5
    )
    assert len(csv_table(result)) == 1 + 8192
    check_png(result.png(), (800, 800))


def constellation_file(code: int, points: np.ndarray) -> bytes:
    iq = np.empty(points.size * 2)
    iq[0::2], iq[1::2] = points.real, points.imag
    payload = np.round(iq * 8192).astype(">i2").tobytes()
    head = struct.pack(">B6sIHHBI", 193, MAC, 600_000_000, code, points.size, 50, len(payload))
    return HEADER % 3 + head + payload


@pytest.mark.parametrize(
    ("code", "levels", "bits"),
    [(5, range(-7, 8, 2), 6), (6, range(-11, 12, 2), 7)],
    ids=["64-QAM", "128-QAM cross"],
)
def test_constellation_mer_with_known_noise(code: int, levels: range, bits: int) -> None:
    """Ideal points plus Gaussian noise for ~30 dB: the MER is that of the noise the test
    added (every decision is right at this level), computed from the written s2.13 values."""
    lattice = np.array([complex(i, q) for i in levels for q in levels])
    corner = max(levels) - 2 * (1 << max(bits - 5, 0) // 2) if bits % 2 else None
    if corner is not None:  # 128-QAM: the 12x12 square without its 2x2 corners
        lattice = lattice[~((np.abs(lattice.real) > corner) & (np.abs(lattice.imag) > corner))]
    assert lattice.size == 1 << bits
    ideal = lattice / np.sqrt(np.mean(np.abs(lattice) ** 2))
    rng = np.random.default_rng(7)
    chosen = ideal[rng.integers(0, ideal.size, 4000)]
    sigma = math.sqrt(10 ** (-30 / 10) / 2)
    noisy = chosen + rng.normal(0, sigma, 4000) + 1j * rng.normal(0, sigma, 4000)
    data = constellation_file(code, noisy)
    iq = np.frombuffer(data[30:], ">i2").astype(float) / 8192
    written = iq[0::2] + 1j * iq[1::2]
    expected = 10 * np.log10(np.mean(np.abs(chosen) ** 2) / np.mean(np.abs(written - chosen) ** 2))

    body = check_json(analyse_file(parse(data)), "constellation")
    assert body["modulation_order"] == 1 << bits
    assert body["mer_db"] == pytest.approx(expected, abs=1e-3)
    assert body["mer_db"] == pytest.approx(30, abs=0.5)


def test_ideal_grids_have_two_to_the_bits_points() -> None:
    for bits in (2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14):
        points, _ = ideal_levels(bits)
        assert points.size == len(set(points.tolist())) == 1 << bits


# --- FEC summary ----------------------------------------------------------------------


def fec_records(data: bytes) -> dict[int, np.ndarray]:
    profiles, pos = {}, 15
    for _ in range(data[14]):
        profile_id, count = struct.unpack(">BH", data[pos : pos + 3])
        profiles[profile_id] = np.frombuffer(data[pos + 3 : pos + 3 + 16 * count], ">u4").reshape(
            count, 4
        )
        pos += 3 + 16 * count
    return profiles


def test_fec_summary_totals_per_profile() -> None:
    data = raw("fec_summary.bin")
    records = fec_records(data)
    result = analysed("fec_summary.bin")
    body = check_json(result, "fec-summary")
    assert (body["channel_id"], body["summary_type"], body["interval_s"]) == (data[6], 2, 1)
    assert body["summary_period"] == "10 minutes"
    assert [p["profile_id"] for p in body["profiles"]] == list(records) == [255, 0, 1, 2, 3]
    for profile in body["profiles"]:
        rows = records[profile["profile_id"]].astype(np.int64)
        assert profile["records"] == len(rows) == 600
        assert profile["codewords"] == rows[:, 1].sum()
        assert profile["corrected"] == rows[:, 2].sum()
        assert profile["uncorrectable"] == rows[:, 3].sum()
        total = rows[:, 1].sum()
        assert profile["uncorrectable_ratio"] == (rows[:, 3].sum() / total if total else None)
        assert profile["codewords_series"] == rows[:, 1].tolist()
        assert profile["timestamps"][0] == rows[0, 0]
        assert profile["last_timestamp"] == rows[-1, 0]
    assert body["profiles"][1]["codewords"] == 23_724_950  # profile 0, by hand from the bytes
    assert body["profiles"][3]["uncorrectable_ratio"] is None  # profile 2 counted nothing
    assert len(csv_table(result)) == 1 + 5 * 600
    check_png(result.png(), (1000, 5 * 240 + 80))


# --- histogram ------------------------------------------------------------------------


def test_histogram_sums_and_peak() -> None:
    data = raw("histogram.bin")
    symmetry = data[16]
    (dwell_length,) = struct.unpack(">I", data[17:21])
    dwell = np.frombuffer(data[21 : 21 + dwell_length], ">u4")
    pos = 21 + dwell_length
    (hit_length,) = struct.unpack(">I", data[pos : pos + 4])
    hits = np.frombuffer(data[pos + 4 : pos + 4 + hit_length], ">u4").astype(np.int64)

    result = analysed("histogram.bin")
    body = check_json(result, "histogram")
    summary = body["summary"]
    assert body["symmetry"] == symmetry
    assert summary["bins"] == hits.size == 256
    assert summary["total_hits"] == hits.sum() == 3_103_784_960
    assert summary["peak_bin"] == int(np.argmax(hits))
    assert summary["mean_bin"] == pytest.approx(
        (np.arange(256) * hits).sum() / hits.sum(), abs=1e-4
    )
    assert summary["dwell_counts"] == dwell.tolist() == [16_777_216]
    assert len(csv_table(result)) == 257
    check_png(result.png(), (1000, 360))


# --- modulation profile ---------------------------------------------------------------


def profile_bits(data: bytes) -> dict[int, list[int]]:
    """Bits per subcarrier of each profile, decoded from the run-length chunks by hand."""
    profiles, pos = {}, 29
    for _ in range(data[17]):
        profile_id, length = struct.unpack(">BH", data[pos : pos + 3])
        pos, end, bits = pos + 3, pos + 3 + length, []
        while pos < end:
            if data[pos] == 0:
                codes = [data[pos + 1]] * struct.unpack(">H", data[pos + 2 : pos + 4])[0]
                pos += 4
            else:
                main, skip = data[pos + 1], data[pos + 2]
                count = struct.unpack(">H", data[pos + 3 : pos + 5])[0]
                codes = [skip if i % 2 else main for i in range(count)]
                pos += 5
            bits += [c if 2 <= c <= 14 else 0 for c in codes]
        profiles[profile_id] = bits
    return profiles


def test_bit_loading_totals() -> None:
    data = raw("modulation_profile.bin")
    expected = profile_bits(data)
    spacing_hz = data[24] * 1000
    result = analysed("modulation_profile.bin")
    body = check_json(result, "bit-loading")
    assert body["spacing_hz"] == spacing_hz == 25_000
    assert {p["profile_id"] for p in body["profiles"]} == set(expected) == {0, 1, 2, 3}
    for profile in body["profiles"]:
        bits = expected[profile["profile_id"]]
        assert profile["bits"] == bits
        assert profile["bits_per_symbol"] == sum(bits)
        assert profile["data_subcarriers"] == sum(1 for b in bits if b)
        assert profile["raw_rate_bps"] == sum(bits) * spacing_hz
    (zero,) = (p for p in body["profiles"] if p["profile_id"] == 0)
    assert zero["bits_per_symbol"] == 59_264
    assert len(csv_table(result)) == 1 + sum(len(b) for b in expected.values())
    check_png(result.png(), (1000, 360))


# --- upstream pre-equalisation --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fraction"),
    [("us_pre_equalizer_coef.bin", 13), ("us_pre_equalizer_coef_last.bin", 14)],
)
def test_pre_eq_taps_of_the_samples(name: str, fraction: int) -> None:
    data = raw(name)
    spacing_hz = data[29] * 1000
    iq = np.frombuffer(data[34:], ">i2").astype(float) / (1 << fraction)
    taps = np.fft.ifft(iq[0::2] + 1j * iq[1::2])
    energy = np.abs(taps) ** 2
    main = int(np.argmax(energy))

    result = analysed(name)
    body = check_json(result, "pre-equalizer")
    figures = body["taps"]
    assert figures["taps"] == taps.size == 1776
    assert figures["main_tap_index"] == main
    assert figures["main_tap_energy_ratio_db"] == pytest.approx(
        10 * np.log10(energy[main] / energy.sum()), abs=1e-3
    )
    assert figures["tap_period_us"] == pytest.approx(1e6 / (taps.size * spacing_hz), abs=1e-6)
    assert len(body["phase_deg"]) == len(body["group_delay_us"]) == 1776
    assert len(csv_table(result)) == 2 + 2 * 1776
    check_png(result.png(), (1000, 1080))


def pre_eq_file(coefficients: np.ndarray, spacing_khz: int = 25) -> bytes:
    iq = np.empty(coefficients.size * 2)
    iq[0::2], iq[1::2] = coefficients.real, coefficients.imag
    payload = np.round(iq * 8192).astype(">i2").tobytes()
    head = struct.pack(">B6s6sIHBI", 41, MAC, MAC, 36_200_000, 148, spacing_khz, len(payload))
    return HEADER % 6 + head + payload


def test_pre_eq_micro_reflection_of_a_known_echo() -> None:
    """H(f) = 1 + 0.1·e^(-j2π·20n/N): one echo 20 taps after the main tap at -20 dBc.
    By hand: τ = 20 / (1776 · 25 kHz) = 0.45045 µs; one-way distance 0.87 c τ / 2 = 58.74 m."""
    n = np.arange(1776)
    result = analyse_file(parse(pre_eq_file(1 + 0.1 * np.exp(-2j * np.pi * 20 * n / 1776))))
    figures = check_json(result, "pre-equalizer")["taps"]
    assert figures["main_tap_index"] == 0
    assert figures["main_tap_energy_ratio_db"] == pytest.approx(10 * np.log10(1 / 1.01), abs=1e-3)
    assert figures["pre_main_energy_ratio_db"] < -60  # only the s2.13 rounding before it
    echo = figures["micro_reflection"]
    assert echo["offset_taps"] == 20
    assert echo["delay_us"] == pytest.approx(0.45045, abs=1e-5)
    assert echo["level_dbc"] == pytest.approx(-20, abs=0.05)
    assert echo["distance_m"] == pytest.approx(58.74, abs=0.01)
    assert echo["distance_m"] == pytest.approx(
        0.87 * SPEED_OF_LIGHT * 20 / (1776 * 25e3) / 2, abs=0.01
    )


# --- per-subcarrier files and the symbol capture --------------------------------------


def test_rxmer_and_channel_estimation() -> None:
    data = raw("rxmer.bin")
    values = np.frombuffer(data[28:], np.uint8) / 4
    body = check_json(analysed("rxmer.bin"), "rxmer")
    assert body["summary"]["mean"] == pytest.approx(values.mean())
    assert body["rxmer_db"][:3] == values[:3].tolist()
    check_png(analysed("rxmer.bin").png(), (1000, 360))

    data = raw("channel_estimation.bin")
    iq = np.frombuffer(data[28:], ">i2").astype(float) / 8192
    magnitude = 20 * np.log10(np.abs(iq[0::2] + 1j * iq[1::2]))
    result = analysed("channel_estimation.bin")
    body = check_json(result, "channel-estimation")
    assert body["magnitude_db"][100] == pytest.approx(magnitude[100], abs=1e-4)
    check_png(result.png(), (1000, 720))


def test_symbol_capture() -> None:
    data = raw("synthetic_symbol_capture.bin")
    (length,) = struct.unpack(">I", data[29:33])
    iq = np.frombuffer(data[33 : 33 + length], ">i2").astype(float).reshape(-1, 2)
    result = analysed("synthetic_symbol_capture.bin")
    body = check_json(result, "symbol-capture")
    assert body["summary"]["samples"] == iq.shape[0]
    assert body["summary"]["rms"] == pytest.approx(np.sqrt((iq**2).sum(axis=1).mean()), abs=1e-3)
    check_png(result.png(), (1000, 360))
