"""The seismograph link on bytes alone: framing, stuffing, checksums, records, and the
transport over ``loop://`` (no simulator, no network)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seismographs.protocol import (
    ChecksumError,
    DeviceConfig,
    LinkDropped,
    LinkTimeout,
    ProjectInfo,
    ProtocolError,
    parse_conn_key,
)
from seismographs.protocol.framing import (
    REQUEST_START,
    STREAM_REPLY_SUB,
    FrameReader,
    build_reply,
    build_request,
    checksum,
    reply_sub,
    stream_checksum,
    stuff,
)
from seismographs.protocol.records import (
    EventHeader,
    MonitorStatus,
    compute_peaks,
    decode_header_record,
    decode_walk_entry,
    encode_header_record,
    encode_walk_entry,
)
from seismographs.protocol.transport import SerialTransport


def test_reply_sub_is_ff_minus_request_sub():
    assert [reply_sub(s) for s in (0x08, 0x1C, 0xA3, 0x5A)] == [0xF7, 0xE3, 0x5C, 0xA5]


def test_request_frame_layout_with_stuffed_dle():
    frame = build_request(0x15, 0x0A)
    payload = bytes((0x02, 0x10, 0x10, 0x00, 0x15, 0x0A, 0, 0, 0, 0))
    assert frame == REQUEST_START + stuff(payload + bytes((checksum(payload),))) + b"\x03"
    # CMD DLE ADDR: both literal 0x10 bytes are sent twice.
    assert frame[:8] == bytes((0x41, 0x02, 0x02, 0x10, 0x10, 0x10, 0x10, 0x00))


def test_checksum_is_8_bit_sum_and_5a_variant_skips_dle_of_pairs():
    assert checksum(bytes([0xFF, 0x02, 0x10])) == 0x11
    assert stream_checksum(bytes([0x10, 0x05, 0x01])) == 0x06
    assert stream_checksum(bytes([0x01, 0x10])) == 0x11  # a trailing DLE has no pair


def test_reader_skips_ring_connect_and_banner():
    reply = build_reply(0xEA, b"BE18189\0\0\0")
    noise = b"\r\nRING\r\n\r\nCONNECT\r\nOperating System\r\n"
    frames = FrameReader().feed(noise + reply)
    assert [(f.sub, f.data) for f in frames] == [(0xEA, b"BE18189\0\0\0")]


def test_reader_handles_a_frame_split_byte_by_byte():
    reply = build_reply(0xE3, bytes(range(0, 40)))  # contains a literal 0x10 and 0x03
    reader = FrameReader()
    frames = [f for b in reply for f in reader.feed(bytes((b,)))]
    assert len(frames) == 1
    assert frames[0].data == bytes(range(0, 40))


def test_checksum_stuffed_when_it_is_dle():
    # Find data whose checksum is 0x10: the checksum byte itself must be doubled.
    data = next(
        bytes((b,)) for b in range(256) if checksum(_reply_payload(0xE3, bytes((b,)))) == 0x10
    )
    frame = build_reply(0xE3, data)
    assert frame.endswith(b"\x10\x10\x03")
    assert FrameReader().feed(frame)[0].data == data


def _reply_payload(sub: int, data: bytes) -> bytes:
    return bytes((0x02, 0x10, 0x10, 0x00, sub, len(data), 0, 0, 0, len(data))) + data


def test_bad_checksum_raises_checksum_error():
    frame = bytearray(build_reply(0xE3, b"\x01\x02"))
    frame[-2] ^= 0x01
    with pytest.raises(ChecksumError) as info:
        FrameReader().feed(bytes(frame))
    assert (info.value.transient, info.value.kind) == (True, "checksum")


def test_truncated_frame_followed_by_new_frame_is_a_protocol_error():
    good = build_reply(0xE3, b"abcdef")
    with pytest.raises(ProtocolError) as info:
        FrameReader().feed(good[:9] + good)
    assert not info.value.transient


def test_wrong_terminator_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        FrameReader().feed(build_reply(0xE3, b"xy")[:-1] + b"\x04")


def test_truncated_frame_waits_for_more():
    reader = FrameReader()
    assert reader.feed(build_reply(0xE3, b"xyz")[:-3]) == []
    assert reader.in_frame


def test_stream_frames_carry_more_than_255_bytes():
    body = bytes(range(256)) * 9
    frame = build_reply(STREAM_REPLY_SUB, body)
    assert FrameReader().feed(frame)[0].data == body


@given(st.binary(max_size=600), st.binary(max_size=40))
def test_any_payload_round_trips_after_any_noise_without_a_start_marker(data, noise):
    noise = noise.replace(b"\x10", b"")
    frames = FrameReader().feed(noise + build_reply(STREAM_REPLY_SUB, data))
    assert [f.data for f in frames] == [data]


def test_config_round_trip_and_validation():
    config = DeviceConfig(
        sample_rate=2048, record_time_s=7.5, project=ProjectInfo("Bridge", "ACME", "Ann", "P1", "n")
    )
    assert DeviceConfig.decode(config.encode()) == config
    bad = DeviceConfig(sample_rate=1000, record_time_s=61, project=ProjectInfo(client="x" * 30))
    assert set(bad.errors()) == {"sample_rate", "record_time_s", "client"}


def test_event_record_round_trip_keeps_pvs_at_offset_87():
    counts = np.zeros((1024, 4), dtype=np.int16)
    counts[100, :3] = (3000, 4000, 0)
    counts[100:110, 3] = 500
    peaks, pvs, mic_db = compute_peaks(counts, 1024, 0.0, 10.0)
    assert pvs == pytest.approx(5000 * 10 / 32767, rel=1e-6)
    header = EventHeader(
        index=4,
        waveform_key="00000000",
        timestamp=dt.datetime(2026, 5, 7, 4, 42, 1, tzinfo=dt.UTC),
        record_type="waveform",
        sample_rate=1024,
        record_time_s=1.0,
        pre_trigger_s=0.0,
        geo_range=10.0,
        sample_count=1024,
        peaks=peaks,
        peak_vector_sum=pvs,
        mic_db=mic_db,
        project=ProjectInfo("Quarry"),
    )
    raw = encode_header_record(header)
    assert len(raw) == 0xD2
    assert raw[87:91] == np.array([pvs], dtype=">f4").tobytes()
    decoded = decode_header_record(4, raw)
    assert decoded.waveform_key == "00000000"
    assert decoded.timestamp == header.timestamp
    assert decoded.peak_vector_sum == pytest.approx(pvs, rel=1e-6)
    assert decoded.peaks["Tran"].ppv == pytest.approx(peaks["Tran"].ppv, rel=1e-6)
    assert decoded.project.project == "Quarry"


def test_walk_end_is_data8_zero_not_key_zero():
    ts = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert decode_walk_entry(encode_walk_entry(0, ts, 25600)) == (0, False)
    assert decode_walk_entry(encode_walk_entry(0, None, 0)) == (0, True)


def test_monitor_status_layouts_idle_and_monitoring():
    clock = dt.datetime(2026, 11, 22, 12, 0, 5, tzinfo=dt.UTC)
    idle = MonitorStatus(False, True, clock, 6.8, 983026, 958034)
    busy = MonitorStatus(True, False, clock, 6.75, 983026, 900000)
    assert (len(idle.encode()), len(busy.encode())) == (58, 42)
    assert MonitorStatus.decode(idle.encode()) == idle
    assert MonitorStatus.decode(busy.encode()) == busy


def test_conn_keys():
    assert parse_conn_key("tcp:10.0.0.5:12345").url == "socket://10.0.0.5:12345"
    serial = parse_conn_key("serial:/dev/ttyUSB0:38400")
    assert (serial.url, serial.baudrate, serial.conn_key) == (
        "/dev/ttyUSB0",
        38400,
        "serial:/dev/ttyUSB0:38400",
    )
    assert parse_conn_key("tcp:h:1").conn_key == "tcp:h:1"
    assert parse_conn_key("tcp:[::1]:5000").url == "socket://[::1]:5000"
    assert parse_conn_key("serial:COM3:9600").url == "COM3"
    bad = [
        "udp:h:1",
        "tcp:h:0",
        "tcp:h:70000",
        "tcp:h?logging=debug:1",
        "tcp:a/b:1",
        "serial:spy:///dev/ttyS0?file=/tmp/x:38400",
        "serial:rfc2217://h:2217:38400",
        "serial:/dev/ttyS0:0",
    ]
    for conn_key in bad:
        with pytest.raises(ValueError, match="conn_key"):
            parse_conn_key(conn_key)


# -- the transport over loop://: what we write comes back as the "unit's" bytes ------------


@pytest.fixture
def loop():
    transport = SerialTransport("loop://")
    transport.open()
    yield transport
    transport.close()


def test_transport_reads_a_frame_after_noise(loop):
    loop.send(b"\r\nRING\r\n\r\nCONNECT\r\n" + build_reply(0xA4))
    assert loop.read_frame(1.0).sub == 0xA4


def test_transport_times_out_on_silence(loop):
    loop.send(b"")
    with pytest.raises(LinkTimeout):
        loop.read_frame(0.2)


def test_transport_times_out_inside_a_truncated_frame(loop):
    loop.send(build_reply(0xE3, b"abcdef")[:-4])
    with pytest.raises(LinkTimeout, match="inside a frame"):
        loop.read_frame_or_end(0.3, idle_gap_s=0.05)


def test_transport_end_of_stream_is_one_byte_then_silence(loop):
    loop.send(b"\x03")
    assert loop.read_frame_or_end(1.0, idle_gap_s=0.05) is None


def test_transport_no_carrier_is_a_drop(loop):
    loop.send(build_reply(0xA5, b"x" * 100)[:40] + b"\r\nNO CARRIER\r\n")
    with pytest.raises(LinkDropped):
        loop.read_frame(1.0)
