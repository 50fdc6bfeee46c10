"""Analysis endpoints over real stored captures (imported from the PyPNM-like sample dir)."""

from __future__ import annotations

import csv
import gc
import io
import json
from pathlib import Path

import numpy as np
import pytest
from rest_framework.test import APIClient

from captures.analysis import ChannelSeries
from captures.analysis_plots import file_png
from captures.pnm import parse
from captures.pnm.ofdm import ChannelEstimation
from captures.pypnm_import import import_data_dir
from captures.tests.test_pypnm_interop import (
    DEMO_1,
    DEMO_2,
    OP_CHAN,
    OP_RXMER,
    SAMPLES,
    T1,
    T3,
    T4,
    T5,
    build_data_dir,
)

EXCLUDED_INDEX = 10
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def imported(tmp_path: Path, settings, db) -> Path:
    """The sample data dir with one subcarrier of the second RxMER file excluded (0xFF)."""
    settings.FIELDRELAY_STORAGE_ROOT = tmp_path / "storage"
    root = build_data_dir(tmp_path / "data")
    second = bytearray((root / "pnm" / DEMO_2).read_bytes())
    second[28 + EXCLUDED_INDEX] = 0xFF
    (root / "pnm" / DEMO_2).write_bytes(bytes(second))
    import_data_dir(root)
    return root


def body(response) -> bytes:
    assert response.streaming
    return b"".join(response.streaming_content)


def quarter_db(path: Path) -> np.ndarray:
    raw = np.frombuffer(path.read_bytes()[28:], dtype=np.uint8)
    values = raw / 4.0
    values[raw == 0xFF] = np.nan
    return values


def url(operation_id: str) -> str:
    return f"/api/v1/captures/operations/{operation_id}/analysis"


def test_min_avg_max_json(imported: Path, operator_client: APIClient) -> None:
    response = operator_client.get(url(OP_RXMER), {"type": "min-avg-max"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    result = json.loads(body(response))
    assert result["skipped"] == []
    (channel,) = result["channels"]
    assert (channel["channel_id"], channel["captures"], channel["unit"]) == (193, 2, "dB")
    first, second = quarter_db(imported / "pnm" / DEMO_1), quarter_db(imported / "pnm" / DEMO_2)
    assert len(channel["avg"]) == first.size == 7600
    header = (SAMPLES / DEMO_1).read_bytes()
    f0, first_index = int.from_bytes(header[17:21], "big"), int.from_bytes(header[21:23], "big")
    assert channel["frequency_hz"][5] == f0 + (first_index + 5) * 25_000
    for i in (0, 1, 500, 7599):
        assert channel["avg"][i] == pytest.approx((first[i] + second[i]) / 2)
        assert channel["min"][i] == min(first[i], second[i])
        assert channel["max"][i] == max(first[i], second[i])
    # The excluded subcarrier is missing in one capture: it is not averaged as 63.75 dB.
    assert channel["avg"][EXCLUDED_INDEX] == first[EXCLUDED_INDEX]
    assert channel["max"][EXCLUDED_INDEX] == first[EXCLUDED_INDEX]


def test_min_avg_max_csv(imported: Path, operator_client: APIClient) -> None:
    response = operator_client.get(url(OP_RXMER), {"type": "min-avg-max", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(body(response).decode())))
    assert rows[0] == ["channel_id", "frequency_hz", "min_dB", "avg_dB", "max_dB", "captures"]
    assert len(rows) == 1 + 7600
    first, second = quarter_db(imported / "pnm" / DEMO_1), quarter_db(imported / "pnm" / DEMO_2)
    row = rows[1 + 42]
    assert float(row[3]) == pytest.approx((first[42] + second[42]) / 2)
    assert rows[1 + EXCLUDED_INDEX][5] == "1"


def test_min_avg_max_png(imported: Path, operator_client: APIClient) -> None:
    response = operator_client.get(url(OP_RXMER), {"type": "min-avg-max", "format": "png"})
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content.startswith(PNG_MAGIC)


def test_heatmap_rows_are_the_captures_in_time_order(
    imported: Path, operator_client: APIClient
) -> None:
    response = operator_client.get(url(OP_RXMER), {"type": "heatmap"})
    (channel,) = json.loads(body(response))["channels"]
    assert channel["timestamps"] == [1764820677, 1764820691]
    second = quarter_db(imported / "pnm" / DEMO_2)
    assert channel["values"][0][:5] == quarter_db(imported / "pnm" / DEMO_1)[:5].tolist()
    assert channel["values"][1][EXCLUDED_INDEX] is None
    assert channel["values"][1][EXCLUDED_INDEX + 1] == second[EXCLUDED_INDEX + 1]
    csv_rows = body(
        operator_client.get(url(OP_RXMER), {"type": "heatmap", "format": "csv"})
    ).splitlines()
    assert len(csv_rows) == 3
    png = operator_client.get(url(OP_RXMER), {"type": "heatmap", "format": "png"})
    assert png.content.startswith(PNG_MAGIC)


def test_group_delay_of_channel_estimation(imported: Path, operator_client: APIClient) -> None:
    response = operator_client.get(url(OP_CHAN), {"type": "group-delay"})
    (channel,) = json.loads(body(response))["channels"]
    estimation = parse((SAMPLES / "channel_estimation.bin").read_bytes())
    assert isinstance(estimation, ChannelEstimation)
    expected = estimation.group_delay_s
    assert (channel["channel_id"], channel["unit"], channel["captures"]) == (34, "s", 1)
    assert np.allclose(channel["avg"], expected, atol=1e-12)
    assert 1e-6 < np.mean(channel["avg"]) < 5e-6


@pytest.mark.parametrize("output", ["json", "csv", "png"])
def test_nothing_of_an_analysis_outlives_its_response(
    imported, operator_client, output: str
) -> None:
    """The per-channel arrays are gone once the last byte is out (PyPNM's RSS creep).

    Counted against what other tests' objects left alive before this request."""

    def alive() -> int:
        gc.collect()
        # type(), not isinstance(): a dead weakref proxy (drf-spectacular leaves some once a
        # schema was generated in this process) raises ReferenceError on isinstance().
        return sum(type(o) is ChannelSeries for o in gc.get_objects())

    before = alive()
    response = operator_client.get(url(OP_RXMER), {"type": "heatmap", "format": output})
    assert response.status_code == 200
    content = body(response) if response.streaming else response.content
    assert content
    del response
    assert alive() == before


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "group-delay"}, "type"),  # RxMER captures have no group delay
        ({"type": "waterfall"}, "type"),
        ({}, "type"),
        ({"type": "min-avg-max", "format": "xlsx"}, "format"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    imported, operator_client: APIClient, params, field
) -> None:
    response = operator_client.get(url(OP_RXMER), params)
    assert response.status_code == 400
    assert field in response.json()


def test_unknown_operation_and_anonymous(imported, operator_client: APIClient) -> None:
    assert operator_client.get(url("00000000deadbeef"), {"type": "heatmap"}).status_code == 404
    anonymous = APIClient().get(url(OP_RXMER), {"type": "heatmap"})
    assert anonymous.status_code in (401, 403)


def test_transaction_parsed(imported: Path, operator_client: APIClient) -> None:
    response = operator_client.get(f"/api/v1/captures/transactions/{T1}/parsed")
    assert response.status_code == 200
    parsed = response.json()
    assert parsed["header"]["test_type"] == "DS_OFDM_RXMER_PER_SUBCAR"
    assert parsed["channel_id"] == 193
    assert parsed["rxmer_db"][:3] == quarter_db(SAMPLES / DEMO_1)[:3].tolist()
    fec = operator_client.get(
        f"/api/v1/captures/transactions/{T4}/parsed", {"data": "false"}
    ).json()
    assert [p["profile_id"] for p in fec["profiles"]] == [255, 0, 1, 2, 3]
    assert "timestamps" not in fec["profiles"][0]
    assert (
        operator_client.get("/api/v1/captures/transactions/00000000deadbeef/parsed").status_code
        == 404
    )
    bad = operator_client.get(f"/api/v1/captures/transactions/{T1}/parsed", {"data": "maybe"})
    assert bad.status_code == 400
    assert "data" in bad.json()


def test_transaction_views_need_authentication(imported) -> None:
    anonymous = APIClient()
    for suffix in ("parsed", "plot.png"):
        response = anonymous.get(f"/api/v1/captures/transactions/{T1}/{suffix}")
        assert response.status_code in (401, 403)


def test_a_damaged_stored_file_is_skipped_or_a_422(imported, operator_client, settings) -> None:
    from captures.models import Transaction

    record = Transaction.objects.get(transaction_id=T1)
    stored = Path(settings.FIELDRELAY_STORAGE_ROOT) / record.stored_path
    stored.write_bytes(b"\x00" * 200)  # no zstd frame any more
    result = json.loads(body(operator_client.get(url(OP_RXMER), {"type": "min-avg-max"})))
    assert [s["transaction_id"] for s in result["skipped"]] == [T1]
    assert "does not decompress" in result["skipped"][0]["reason"]
    assert result["channels"][0]["captures"] == 1
    for suffix in ("parsed", "plot.png"):
        response = operator_client.get(f"/api/v1/captures/transactions/{T1}/{suffix}")
        assert response.status_code == 422
        assert "cannot be read" in response.json()["detail"]


MODEM_FILES = [p for p in sorted(SAMPLES.glob("*.bin")) if p.read_bytes()[:3] == b"PNN"]


@pytest.mark.parametrize("path", MODEM_FILES, ids=lambda p: p.name)
def test_every_sample_type_has_a_plot(path: Path) -> None:
    assert file_png(parse(path.read_bytes())).startswith(PNG_MAGIC)


@pytest.mark.parametrize("txn", [T1, T3, T4, T5])
def test_transaction_plot(imported, operator_client: APIClient, txn: str) -> None:
    response = operator_client.get(f"/api/v1/captures/transactions/{txn}/plot.png")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content.startswith(PNG_MAGIC)
