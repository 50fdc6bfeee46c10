"""Writers for real PNM bulk-data files, as a simulated cable modem uploads them.

Layouts from shared/reference/docsis-pnm.md §3 (big-endian): the 10-byte "PNN" header
(``!3sBBBI``: magic, type, major, minor, capture time) then, for RxMER (PNN4) and channel
estimation (PNN2), ``!B6sIHBI``: channel id, CM MAC, subcarrier-zero frequency (Hz), first
active subcarrier index, spacing (kHz), data length, and the data at offset 28. Those two
are synthetic (seeded per modem and trigger, so tests can compare bytes); every other test
uploads a real sample (``simulators/samples``) with its channel id, MAC and capture time
patched in, the spectrum built to the requested frequencies and the FEC summary to the
requested type.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from devices.links.pnm import FILE_SPECS, WINDOW_FUNCTIONS, PnmTest, normalize_mac

SAMPLES = Path(__file__).resolve().parent / "samples"
# PNN type -> (sample file, offset of the channel id (None: no channel), offset of the MAC)
SAMPLE_FILES: dict[int, tuple[str, int | None, int]] = {
    1: ("synthetic_symbol_capture.bin", 10, 11),
    3: ("const_display.bin", 10, 11),
    5: ("histogram.bin", None, 10),
    6: ("us_pre_equalizer_coef.bin", 10, 11),
    7: ("us_pre_equalizer_coef_last.bin", 10, 11),
    8: ("fec_summary.bin", 6, 7),  # 6-byte header: no capture time
    9: ("spectrum_analyzer.bin", 10, 11),
    10: ("modulation_profile.bin", 10, 11),
}
FEC_HEAD = struct.Struct(
    "!3sBBBB6sBB"
)  # magic, type, major, minor, channel, MAC, sum type, profiles
FEC_SET = struct.Struct("!IIII")  # timestamp, codewords, corrected, uncorrectable
FEC_STEPS = {"10min": (2, 600, 1), "24h": (3, 1440, 60)}  # sum type, sets, seconds apart
SPECTRUM_HEAD = struct.Struct(
    "!B6sIIIHHHI"
)  # ch, MAC, first, last, span, bins, ENBW, window, length
SNMP_SEGMENT_HEAD = struct.Struct("!5I")  # centre, span, bins, bin spacing, resolution bandwidth

COMMON_HEADER = struct.Struct("!3sBBBI")
OFDM_HEADER = struct.Struct("!B6sIHBI")
DATA_OFFSET = COMMON_HEADER.size + OFDM_HEADER.size  # 28
RXMER_EXCLUDED = 0xFF  # CM-OSSI: excluded subcarrier / no measurement
S2_13 = 8192  # s2.13 fixed point: value / 8192


def _ripple(rng: np.random.Generator, n: int, depth: float) -> np.ndarray:
    """A slow tilt plus a standing-wave ripple across the band, like a real plant."""
    x = np.linspace(0.0, 1.0, n)
    tilt = rng.uniform(-1.0, 1.0) * depth
    periods = rng.uniform(2.0, 6.0)
    phase = rng.uniform(0, 2 * np.pi)
    return tilt * (x - 0.5) + 0.5 * depth * np.sin(2 * np.pi * periods * x + phase)


def rxmer_values(
    subcarriers: int,
    *,
    seed: int = 0,
    mean_db: float = 40.0,
    noise_db: float = 0.8,
    excluded: int = 4,
) -> np.ndarray:
    """Per-subcarrier RxMER in quarter-dB (uint8); ``excluded`` entries are 0xFF."""
    rng = np.random.default_rng(seed)
    db = mean_db + _ripple(rng, subcarriers, 2.0) + rng.normal(0.0, noise_db, subcarriers)
    quarter = np.clip(np.rint(db * 4), 0, 254).astype(np.uint8)
    if excluded:
        quarter[rng.choice(subcarriers, size=min(excluded, subcarriers), replace=False)] = (
            RXMER_EXCLUDED
        )
    return quarter


def channel_estimation_values(subcarriers: int, *, seed: int = 0) -> np.ndarray:
    """Interleaved I, Q as int16 s2.13: a flat-ish response with one micro-reflection."""
    rng = np.random.default_rng(seed)
    k = np.arange(subcarriers)
    delay = rng.uniform(0.002, 0.02)  # echo delay in subcarrier-periods (phase per bin)
    echo = rng.uniform(0.02, 0.1) * np.exp(-2j * np.pi * delay * k)
    gain = 10 ** (_ripple(rng, subcarriers, 1.0) / 20)
    noise = rng.normal(0.0, 0.01, subcarriers) + 1j * rng.normal(0.0, 0.01, subcarriers)
    response = 0.9 * gain * (1 + echo) + noise
    pairs = np.empty(2 * subcarriers)
    pairs[0::2] = response.real
    pairs[1::2] = response.imag
    return np.clip(np.rint(pairs * S2_13), -32768, 32767).astype(">i2")


_VALUES = {PnmTest.RXMER: rxmer_values, PnmTest.CHANNEL_ESTIMATION: channel_estimation_values}


def pnm_file(
    test: PnmTest,
    *,
    channel_id: int,
    mac: str,
    capture_time: int,
    seed: int = 0,
    subcarriers: int = 3800,
    first_active: int = 148,
    spacing_khz: int = 50,
    zero_freq_hz: int = 759_300_000,
) -> bytes:
    """The file ``test`` uploads: header, then RxMER (1 B) or I/Q (4 B) per subcarrier."""
    data = _VALUES[test](subcarriers, seed=seed).tobytes()
    header = COMMON_HEADER.pack(b"PNN", test.files[0].pnn_type, 1, 0, capture_time)
    header += OFDM_HEADER.pack(
        channel_id,
        bytes.fromhex(normalize_mac(mac)),
        zero_freq_hz,
        first_active,
        spacing_khz,
        len(data),
    )
    return header + data


def rxmer_file(**options: Any) -> bytes:
    """A PNN4 RxMER file, 28 + ``subcarriers`` bytes; options as for ``pnm_file``."""
    return pnm_file(PnmTest.RXMER, **options)


def channel_estimation_file(**options: Any) -> bytes:
    """A PNN2 channel-estimation file, 28 + 4 * ``subcarriers`` bytes."""
    return pnm_file(PnmTest.CHANNEL_ESTIMATION, **options)


@functools.cache
def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def patched_sample(pnn_type: int, *, channel_id: int, mac: str, capture_time: int) -> bytes:
    """A sample file of ``pnn_type`` with this modem's channel id, MAC and capture time."""
    name, channel_at, mac_at = SAMPLE_FILES[pnn_type]
    data = bytearray(sample(name))
    if pnn_type != 8:
        struct.pack_into("!I", data, 6, capture_time)
    if channel_at is not None:
        data[channel_at] = channel_id & 0xFF
    data[mac_at : mac_at + 6] = bytes.fromhex(normalize_mac(mac))
    return bytes(data)


def _fec_profiles() -> list[tuple[int, np.ndarray]]:
    """The sample FEC summary's (profile id, sets as an (n, 4) uint32 array)."""
    data = sample(SAMPLE_FILES[8][0])
    profiles, offset = [], FEC_HEAD.size
    for _ in range(FEC_HEAD.unpack_from(data)[-1]):
        profile_id, count = struct.unpack_from("!BH", data, offset)
        offset += 3
        sets = np.frombuffer(data, ">u4", count * 4, offset).reshape(count, 4)
        profiles.append((profile_id, sets))
        offset += count * FEC_SET.size
    return profiles


def fec_summary_file(*, channel_id: int, mac: str, capture_time: int, summary_type: str) -> bytes:
    """A FEC summary ending at ``capture_time``: 600 one-second sets per profile (10 min) or
    1440 sets 60 s apart (24 h), the sample's counters repeated as needed."""
    code, count, step = FEC_STEPS[summary_type]
    profiles = _fec_profiles()
    head = FEC_HEAD.pack(
        b"PNN", 8, 1, 0, channel_id & 0xFF, bytes.fromhex(normalize_mac(mac)), code, len(profiles)
    )
    parts = [head]
    times = capture_time - step * np.arange(count - 1, -1, -1, dtype=np.int64)
    for profile_id, sets in profiles:
        counters = np.resize(sets[:, 1:], (count, 3))
        rows = np.column_stack([times, counters]).astype(">u4")
        parts += [struct.pack("!BH", profile_id, count), rows.tobytes()]
    return b"".join(parts)


def _sample_amplitudes() -> np.ndarray:
    """The sample spectrum's amplitudes (int16, 0.01 dB), flattened."""
    data = sample(SAMPLE_FILES[9][0])
    length = SPECTRUM_HEAD.unpack_from(data, 10)[-1]
    return np.frombuffer(data, ">i2", length // 2, 10 + SPECTRUM_HEAD.size)


def spectrum_segments(parameters: Mapping[str, Any]) -> list[int]:
    """The segment centre frequencies the analyser sweeps for ``parameters``."""
    first, last = parameters["first_segment_center_hz"], parameters["last_segment_center_hz"]
    span = parameters["segment_span_hz"]
    return list(range(first, last + 1, span))


def spectrum_file(
    *, channel_id: int, mac: str, capture_time: int, parameters: Mapping[str, Any]
) -> bytes:
    """A PNN9 file swept as ``parameters`` ask: one segment per centre frequency, the sample's
    amplitudes repeated to fill them."""
    centres, bins = spectrum_segments(parameters), parameters["bins_per_segment"]
    amplitudes = np.resize(_sample_amplitudes(), len(centres) * bins).astype(">i2").tobytes()
    window = dict(WINDOW_FUNCTIONS)[parameters["window_function"]]
    head = SPECTRUM_HEAD.pack(
        channel_id & 0xFF,
        bytes.fromhex(normalize_mac(mac)),
        centres[0],
        centres[-1],
        parameters["segment_span_hz"],
        bins,
        parameters["noise_bandwidth"],
        window,
        len(amplitudes),
    )
    return COMMON_HEADER.pack(b"PNN", 9, 1, 0, capture_time) + head + amplitudes


def snmp_spectrum_rows(parameters: Mapping[str, Any]) -> list[tuple[int, bytes]]:
    """docsIf3CmSpectrumAnalysisMeasAmplitudeData rows (centre frequency, AmplitudeData):
    a ``>5I`` head (centre, span, bins, bin spacing, resolution bandwidth) and the bins."""
    centres, bins = spectrum_segments(parameters), parameters["bins_per_segment"]
    span = parameters["segment_span_hz"]
    spacing = span // bins
    values = np.resize(_sample_amplitudes(), len(centres) * bins).astype(">i2").reshape(-1, bins)
    return [
        (
            centre,
            SNMP_SEGMENT_HEAD.pack(
                centre, span, bins, spacing, spacing * parameters["noise_bandwidth"] // 100
            )
            + row.tobytes(),
        )
        for centre, row in zip(centres, values, strict=True)
    ]


def upload_file(
    file_type: str,
    *,
    channel_id: int,
    mac: str,
    capture_time: int,
    seed: int,
    parameters: Mapping[str, Any],
) -> bytes:
    """The bytes a simulated modem uploads for one file of a test (``file_type``: the file's
    test type; ``parameters``: the test's, complete)."""
    if file_type in _VALUES:
        return pnm_file(
            PnmTest(file_type), channel_id=channel_id, mac=mac, capture_time=capture_time, seed=seed
        )
    if file_type == PnmTest.FEC_SUMMARY:
        return fec_summary_file(
            channel_id=channel_id,
            mac=mac,
            capture_time=capture_time,
            summary_type=str(parameters["summary_type"]),
        )
    if file_type == PnmTest.SPECTRUM_ANALYZER:
        return spectrum_file(
            channel_id=channel_id, mac=mac, capture_time=capture_time, parameters=parameters
        )
    return patched_sample(
        FILE_SPECS[file_type].pnn_type, channel_id=channel_id, mac=mac, capture_time=capture_time
    )
