"""The analysis endpoints over stored transactions of every file type: each format, the
ZIP's members, errors and access; OFDM profile performance of a capture group, checked
against arithmetic on the sample bytes."""

from __future__ import annotations

import csv
import io
import json
import struct
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rest_framework.test import APIClient

from captures import storage
from captures.models import (
    Capture,
    CaptureGroup,
    CaptureState,
    Operation,
    OperationState,
    Transaction,
)
from captures.pnm import TEST_TYPE_NAMES, FileType
from captures.tests.test_analyses_files import profile_bits
from tests.factories import make_modem

SAMPLES = Path(__file__).parent / "data" / "pnm"
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SNMP_SPECTRUM = "SPECTRUM_ANALYZER_SNMP_AMP_DATA"
FILES = {  # sample → (test type, analysis kind)
    "rxmer.bin": (TEST_TYPE_NAMES[FileType.RXMER], "rxmer"),
    "channel_estimation.bin": (TEST_TYPE_NAMES[FileType.CHANNEL_ESTIMATION], "channel-estimation"),
    "const_display.bin": (TEST_TYPE_NAMES[FileType.CONSTELLATION], "constellation"),
    "histogram.bin": (TEST_TYPE_NAMES[FileType.HISTOGRAM], "histogram"),
    "us_pre_equalizer_coef.bin": (TEST_TYPE_NAMES[FileType.US_PRE_EQUALIZER], "pre-equalizer"),
    "us_pre_equalizer_coef_last.bin": (
        TEST_TYPE_NAMES[FileType.US_PRE_EQUALIZER_LAST],
        "pre-equalizer",
    ),
    "fec_summary.bin": (TEST_TYPE_NAMES[FileType.FEC_SUMMARY], "fec-summary"),
    "spectrum_analyzer.bin": (TEST_TYPE_NAMES[FileType.SPECTRUM_ANALYSIS], "spectrum"),
    "spectrum_analyzer_snmp.bin": (SNMP_SPECTRUM, "spectrum"),
    "modulation_profile.bin": (TEST_TYPE_NAMES[FileType.MODULATION_PROFILE], "bit-loading"),
    "synthetic_symbol_capture.bin": (TEST_TYPE_NAMES[FileType.SYMBOL_CAPTURE], "symbol-capture"),
}


def new_operation() -> Operation:
    return Operation.objects.create(
        name="multi_rxmer",
        measure_mode="continuous",
        modem=make_modem(Operation.objects.count() + 1),
        capture_group=CaptureGroup.objects.create(),
        duration_s=60,
        sample_interval_s=10,
        state=OperationState.COMPLETED,
    )


def store(operation: Operation, data: bytes, test_type: str, channel_id: int = 34) -> Transaction:
    """A stored transaction of ``operation`` holding ``data``, one tick after the last."""
    tick = operation.captures.count() + 1
    when = START + timedelta(seconds=10 * tick)
    name = f"{test_type.lower()}_{operation.operation_id}_{tick}.bin"
    capture = Capture.objects.create(
        operation=operation,
        tick=tick,
        channel_id=channel_id,
        if_index=0,
        file_name=name,
        state=CaptureState.STORED,
        triggered_at=when,
        deadline=when,
    )
    stored = storage.store_compressed(
        data, storage.stored_relative_path(operation.modem.mac_hex, name + ".zst"), 3
    )
    return Transaction.objects.create(
        capture=capture,
        capture_group=operation.capture_group,
        modem=operation.modem,
        timestamp=when,
        mac_address=operation.modem.mac_address,
        pnm_test_type=test_type,
        channel_id=channel_id,
        filename=name + ".zst",
        **stored.transaction_fields(),
    )


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def decoded_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    assert image.width >= 800
    pixels = np.asarray(image.convert("RGB")).astype(int)
    assert np.count_nonzero(pixels.max(axis=2) - pixels.min(axis=2) > 60) > 300, "no data drawn"
    return image


def analysis_url(transaction_id: str) -> str:
    return f"/api/v1/captures/transactions/{transaction_id}/analysis"


@pytest.fixture
def stored(db) -> dict[str, Transaction]:
    operation = new_operation()
    return {
        name: store(operation, (SAMPLES / name).read_bytes(), test_type)
        for name, (test_type, _) in FILES.items()
    }


@pytest.mark.parametrize("name", list(FILES))
def test_every_file_type_in_every_format(
    stored: dict[str, Transaction], viewer_client: APIClient, name: str
) -> None:
    record, kind = stored[name], FILES[name][1]
    url = analysis_url(record.transaction_id)

    as_json = viewer_client.get(url)
    assert as_json.status_code == 200
    assert as_json["Content-Type"] == "application/json"
    result = json.loads(body(as_json))
    assert result["analysis"] == kind

    as_csv = viewer_client.get(url, {"format": "csv"})
    assert as_csv.status_code == 200
    assert as_csv["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(body(as_csv).decode())))
    assert len(rows) > 100
    assert all(len(row) == len(rows[0]) for row in rows[:50])

    as_png = viewer_client.get(url, {"format": "png"})
    assert as_png.status_code == 200
    assert as_png["Content-Type"] == "image/png"
    decoded_png(body(as_png))

    as_zip = viewer_client.get(url, {"format": "zip"})
    assert as_zip.status_code == 200
    assert as_zip["Content-Type"] == "application/zip"
    assert as_zip.streaming
    stem = f"{record.transaction_id}_{kind}"
    assert as_zip["Content-Disposition"] == f'attachment; filename="{stem}.zip"'
    with zipfile.ZipFile(io.BytesIO(body(as_zip))) as archive:
        assert archive.namelist() == [f"{stem}.json", f"{stem}.csv", f"{stem}.png"]
        assert json.loads(archive.read(f"{stem}.json")) == result
        assert archive.read(f"{stem}.csv").decode().splitlines()[0] == ",".join(rows[0])
        assert len(archive.read(f"{stem}.csv").decode().splitlines()) == len(rows)
        decoded_png(archive.read(f"{stem}.png"))


def test_figures_through_the_api(stored: dict[str, Transaction], viewer_client) -> None:
    """Histogram and FEC totals as served, against sums of the raw bytes."""
    histogram = (SAMPLES / "histogram.bin").read_bytes()
    hits = np.frombuffer(histogram[21 + 4 + 4 :], ">u4").astype(np.int64)  # one dwell count
    served = json.loads(
        body(viewer_client.get(analysis_url(stored["histogram.bin"].transaction_id)))
    )
    assert served["summary"]["total_hits"] == hits.sum()
    assert served["hit_counts"] == hits.tolist()

    fec = (SAMPLES / "fec_summary.bin").read_bytes()
    count = struct.unpack(">H", fec[16:18])[0]  # the first profile (NCP)
    first = np.frombuffer(fec[18 : 18 + 16 * count], ">u4").reshape(count, 4).astype(np.int64)
    served = json.loads(
        body(viewer_client.get(analysis_url(stored["fec_summary.bin"].transaction_id)))
    )
    ncp = served["profiles"][0]
    assert (ncp["profile"], ncp["codewords"]) == ("NCP", first[:, 1].sum())


def test_bad_format_unknown_id_unparseable_file(
    stored: dict[str, Transaction], viewer_client: APIClient
) -> None:
    url = analysis_url(stored["rxmer.bin"].transaction_id)
    bad = viewer_client.get(url, {"format": "xml"})
    assert bad.status_code == 400
    assert "format" in bad.json()

    assert viewer_client.get(analysis_url("0" * 16)).status_code == 404

    garbage = store(new_operation(), b"PNN\x04\x01\x00" + b"\x00" * 10, "DS_OFDM_RXMER_PER_SUBCAR")
    unparseable = viewer_client.get(analysis_url(garbage.transaction_id), {"format": "png"})
    assert unparseable.status_code == 422
    assert unparseable["Content-Type"] == "application/json"
    assert "not a valid PNM file" in unparseable.json()["detail"]

    lost = stored["histogram.bin"]
    (storage.storage_root() / lost.stored_path).unlink()
    assert viewer_client.get(analysis_url(lost.transaction_id)).status_code == 404


def test_analysis_needs_authentication(stored: dict[str, Transaction]) -> None:
    response = APIClient().get(analysis_url(stored["rxmer.bin"].transaction_id))
    assert response.status_code in (401, 403)


# --- OFDM profile performance over a capture group ------------------------------------


def shifted_rxmer(quarter_db: int) -> bytes:
    """rxmer.bin with every subcarrier ``quarter_db`` quarter-dB higher."""
    data = bytearray((SAMPLES / "rxmer.bin").read_bytes())
    values = np.frombuffer(bytes(data[28:]), np.uint8).astype(int) + quarter_db
    data[28:] = np.clip(values, 0, 254).astype(np.uint8).tobytes()
    return bytes(data)


@pytest.fixture
def performance_group(db) -> Operation:
    """Two RxMER captures of channel 34 (the sample and the sample +1 dB), the modulation
    profile of channel 34, and the FEC summary with its channel byte set to 34."""
    operation = new_operation()
    store(operation, (SAMPLES / "rxmer.bin").read_bytes(), FILES["rxmer.bin"][0])
    modulation = (SAMPLES / "modulation_profile.bin").read_bytes()
    store(operation, modulation, FILES["modulation_profile.bin"][0])
    store(operation, shifted_rxmer(4), FILES["rxmer.bin"][0])
    fec = bytearray((SAMPLES / "fec_summary.bin").read_bytes())
    fec[6] = 34
    store(operation, bytes(fec), FILES["fec_summary.bin"][0])
    return operation


def expected_performance() -> dict[int, dict[str, float]]:
    """Per profile: subcarriers below need, min margin and capacity delta, by hand from the
    bytes: mean RxMER = raw/4 + 0.5 dB; need = 10·log10(2^b - 1) dB (Shannon, as PyPNM);
    supported bits = floor(log2(1 + 10^(MER/10))), 0 below QPSK, at most 14."""
    rxmer = (SAMPLES / "rxmer.bin").read_bytes()
    mean = np.frombuffer(rxmer[28:], np.uint8) / 4 + 0.5
    modulation = (SAMPLES / "modulation_profile.bin").read_bytes()
    # the two files share channel 34's grid: f0 631.1 MHz, first active index 356, 25 kHz
    assert rxmer[17:24] == modulation[18:25]
    expected = {}
    for profile_id, bits_list in profile_bits(modulation).items():
        bits = np.array(bits_list)
        data = bits > 0
        need = 10 * np.log10(2.0 ** bits[data] - 1)
        margin = mean[: bits.size][data] - need
        supported = np.clip(np.floor(np.log2(1 + 10 ** (mean[: bits.size][data] / 10))), 0, 14)
        supported[supported < 2] = 0
        expected[profile_id] = {
            "below_need": int((margin < 0).sum()),
            "min_margin_db": float(margin.min()),
            "capacity_delta_bits_per_symbol": int(supported.sum() - bits[data].sum()),
        }
    return expected


def performance_url(operation: Operation) -> str:
    return f"/api/v1/captures/operations/{operation.operation_id}/analysis"


def test_profile_performance_json(performance_group: Operation, viewer_client) -> None:
    response = viewer_client.get(
        performance_url(performance_group), {"type": "ofdm-profile-performance"}
    )
    assert response.status_code == 200
    result = json.loads(body(response))
    assert result["analysis"] == "ofdm-profile-performance"
    assert "Shannon" in result["required_mer_source"]
    (channel,) = result["channels"]
    assert (channel["channel_id"], channel["rxmer_captures"]) == (34, 2)
    assert channel["ncp_fec"]["profile"] == "NCP"
    expected = expected_performance()
    assert {p["profile_id"] for p in channel["profiles"]} == set(expected)
    for profile in channel["profiles"]:
        figures = expected[profile["profile_id"]]
        assert profile["below_need"] == figures["below_need"]
        assert profile["min_margin_db"] == pytest.approx(figures["min_margin_db"], abs=1e-3)
        assert (
            profile["capacity_delta_bits_per_symbol"] == figures["capacity_delta_bits_per_symbol"]
        )
        assert profile["capacity_delta_bps"] == figures["capacity_delta_bits_per_symbol"] * 25_000
        assert profile["fec"]["profile_id"] == profile["profile_id"]
    zero = next(p for p in channel["profiles"] if p["profile_id"] == 0)
    assert zero["fec"]["codewords"] == 23_724_950  # profile 0's codewords in the FEC file
    first_subcarrier = (SAMPLES / "rxmer.bin").read_bytes()[28]
    assert zero["measured_mer_db"][0] == pytest.approx(first_subcarrier / 4 + 0.5)


def test_profile_performance_csv_png_zip(performance_group: Operation, viewer_client) -> None:
    url, query = performance_url(performance_group), {"type": "ofdm-profile-performance"}
    rows = list(
        csv.reader(io.StringIO(body(viewer_client.get(url, {**query, "format": "csv"})).decode()))
    )
    assert rows[0][:4] == ["channel_id", "profile_id", "frequency_hz", "bits"]
    assert len(rows) == 1 + 4 * 7480
    decoded_png(body(viewer_client.get(url, {**query, "format": "png"})))
    archive = zipfile.ZipFile(io.BytesIO(body(viewer_client.get(url, {**query, "format": "zip"}))))
    stem = f"{performance_group.operation_id}_ofdm-profile-performance"
    assert archive.namelist() == [f"{stem}.json", f"{stem}.csv", f"{stem}.png"]
    assert len(archive.read(f"{stem}.csv").decode().splitlines()) == len(rows)
    decoded_png(archive.read(f"{stem}.png"))


def test_profile_performance_needs_a_profile_and_rxmer(viewer_client) -> None:
    operation = new_operation()
    store(operation, (SAMPLES / "rxmer.bin").read_bytes(), FILES["rxmer.bin"][0])
    response = viewer_client.get(performance_url(operation), {"type": "ofdm-profile-performance"})
    assert response.status_code == 400
    assert "modulation profile" in response.json()["type"][0]


def test_existing_operation_analyses_also_zip(performance_group: Operation, viewer_client) -> None:
    response = viewer_client.get(
        performance_url(performance_group), {"type": "min-avg-max", "format": "zip"}
    )
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    stem = f"{performance_group.operation_id}_min-avg-max"
    assert archive.namelist() == [f"{stem}.json", f"{stem}.csv", f"{stem}.png"]
    (channel,) = json.loads(archive.read(f"{stem}.json"))["channels"]
    first = np.frombuffer((SAMPLES / "rxmer.bin").read_bytes()[28:], np.uint8) / 4
    assert channel["avg"][:3] == pytest.approx((first[:3] + 0.5).tolist())
    decoded_png(archive.read(f"{stem}.png"))
