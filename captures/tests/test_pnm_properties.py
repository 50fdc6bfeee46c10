"""Property tests: arbitrary and mutated bytes give a result or PnmFormatError, nothing else,
and parsing never allocates more than a small multiple of the input it was given."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from captures.pnm import (
    FileType,
    PnmFormatError,
    SnmpSpectrumSegment,
    parse,
    parse_snmp_spectrum,
)

DATA = Path(__file__).parent / "data" / "pnm"
SAMPLES = [p.read_bytes() for p in sorted(DATA.glob("*.bin"))]
PNM_SAMPLES = [s for s in SAMPLES if s[:3] == b"PNN"]
# Parsed arrays are views or, at worst, complex128 per 4 input bytes (4x) and float64 per
# byte (8x) when derived figures are computed; anything past this means a length was trusted.
ALLOCATION_FACTOR = 16
ALLOCATION_SLACK = 256 * 1024

PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_and_measure(data: bytes) -> int:
    """Parse (and compute derived figures); return the peak bytes allocated meanwhile."""
    error = None
    tracemalloc.start()
    try:
        try:
            parse(data).as_dict(data=False)
        except PnmFormatError as caught:
            error = caught
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if error is not None:
        assert error.field
        assert 0 <= error.offset <= len(data)
    return peak


for _sample in SAMPLES:  # warm numpy's lazy imports and caches so they are not counted
    parse_and_measure(_sample)


def assert_bounded(data: bytes) -> None:
    peak = parse_and_measure(data)
    assert peak <= ALLOCATION_FACTOR * len(data) + ALLOCATION_SLACK, (peak, len(data))


@PROFILE
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    assert_bounded(data)


@PROFILE
@given(
    st.sampled_from([b"PNN", b"PNM"]),
    st.sampled_from([int(t) for t in FileType]),
    st.binary(max_size=2048),
)
def test_random_body_behind_a_valid_header(magic: bytes, code: int, body: bytes) -> None:
    prefix = magic + bytes([code]) + (b"\x01\x00" if magic == b"PNN" else b"")
    assert_bounded(prefix + body)


@PROFILE
@given(
    st.sampled_from(PNM_SAMPLES),
    st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 64),
)
def test_mutated_headers_of_real_files(sample: bytes, edits: list, chop: int) -> None:
    data = bytearray(sample)
    for offset, value in edits:
        data[offset] = value
    assert_bounded(bytes(data[: len(data) - chop]))


@PROFILE
@given(
    st.sampled_from(PNM_SAMPLES),
    st.integers(0, 40),
    st.sampled_from([0xFFFFFFFF, 0x7FFFFFFF, 0x10000000, 0xFFFF]),
)
def test_huge_declared_lengths_never_allocate(sample: bytes, offset: int, length: int) -> None:
    """A length field set to gigabytes (cf. jkooten/pnm#2) must fail before allocating."""
    data = bytearray(sample)
    struct.pack_into(">I", data, offset, length)
    assert_bounded(bytes(data))


@PROFILE
@given(st.binary(max_size=2048), st.integers(0, 0xFFFFFFFF))
def test_snmp_spectrum_segments_with_any_bin_count(tail: bytes, bins: int) -> None:
    """PyPNM's header-less SNMP spectrum file: a bin count never outruns the buffer."""
    data = struct.pack(">5I", 1_000_000, 100, bins, 10, 1) + tail
    tracemalloc.start()
    try:
        outcome: list[SnmpSpectrumSegment] | PnmFormatError
        try:
            outcome = parse_snmp_spectrum(data)
        except PnmFormatError as caught:
            outcome = caught
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(outcome, list | PnmFormatError)
    assert peak <= ALLOCATION_FACTOR * len(data) + ALLOCATION_SLACK
