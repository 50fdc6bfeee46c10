"""Writers for real PNM bulk-data files, as a simulated cable modem uploads them.

Layouts from shared/reference/docsis-pnm.md §3 (big-endian): the 10-byte "PNN" header
(``!3sBBBI``: magic, type, major, minor, capture time) then, for RxMER (PNN4) and channel
estimation (PNN2), ``!B6sIHBI``: channel id, CM MAC, subcarrier-zero frequency (Hz), first
active subcarrier index, spacing (kHz), data length, and the data at offset 28.
Deterministic for a given seed, so tests can compare bytes.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from devices.links.pnm import PnmTest, normalize_mac

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
    header = COMMON_HEADER.pack(b"PNN", test.spec.pnn_type, 1, 0, capture_time)
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
