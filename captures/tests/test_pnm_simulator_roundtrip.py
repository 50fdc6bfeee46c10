"""The modem simulator's file writers and our parsers agree: write → parse → same values."""

from __future__ import annotations

import numpy as np
import pytest

from captures.pnm import ChannelEstimation, RxMer, parse
from simulators.pnm_files import (
    RXMER_EXCLUDED,
    channel_estimation_file,
    channel_estimation_values,
    rxmer_file,
    rxmer_values,
)

GRID = {"subcarriers": 3800, "first_active": 148, "spacing_khz": 50, "zero_freq_hz": 759_300_000}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_rxmer_writer_roundtrip(seed: int) -> None:
    data = rxmer_file(
        channel_id=193, mac="aa:bb:cc:00:11:22", capture_time=1764820677, seed=seed, **GRID
    )
    result = parse(data)
    assert isinstance(result, RxMer)
    assert (result.channel_id, result.mac_address) == (193, "aa:bb:cc:00:11:22")
    assert result.header.capture_time == 1764820677
    assert result.grid.frequencies()[0] == 759_300_000 + 148 * 50_000
    written = rxmer_values(GRID["subcarriers"], seed=seed)
    excluded = written == RXMER_EXCLUDED
    assert excluded.sum() == result.excluded_count > 0
    assert np.isnan(result.values_db[excluded]).all()
    assert np.array_equal(result.values_db[~excluded], written[~excluded] / 4)


@pytest.mark.parametrize("seed", [0, 3])
def test_channel_estimation_writer_roundtrip(seed: int) -> None:
    data = channel_estimation_file(
        channel_id=194, mac="aa:bb:cc:00:11:22", capture_time=5, seed=seed, **GRID
    )
    result = parse(data)
    assert isinstance(result, ChannelEstimation)
    assert result.grid.count == GRID["subcarriers"]
    pairs = channel_estimation_values(GRID["subcarriers"], seed=seed).astype(np.int64)
    assert np.array_equal(result.coefficients.real * 8192, pairs[0::2])
    assert np.array_equal(result.coefficients.imag * 8192, pairs[1::2])
    assert np.isfinite(result.group_delay_s).all()
