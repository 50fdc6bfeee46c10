"""The series API: response shape, raw vs minute resolution, decimation, gzip, caching, auth."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitoring.models import RetentionState
from monitoring.tests.helpers import generated, store

START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def series_data(bpm):
    """2 hours at ~2 Hz for one BPM, with one spike to find again."""
    batch = generated([bpm.pk], START, hours=2, step_s=0.5)
    batch.values[1234, 2] = 1e6
    store(batch, chunks=3)
    return batch


def get(integrator_client, path, **params):
    return integrator_client.get(f"/api/v1/monitoring/{path}", params, HTTP_ACCEPT_ENCODING="gzip")


def body(response) -> dict:
    raw = response.content
    if response.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def test_instruments_list_carries_channels(integrator_client, bpm):
    response = integrator_client.get("/api/v1/monitoring/instruments/")
    assert response.status_code == 200
    assert response.json() == [
        {
            "id": bpm.pk,
            "name": "10AE",
            "kind": "bpm",
            "channels": ["top_in", "bot_in", "bot_out", "top_out"],
            "active": True,
        }
    ]


def test_raw_series_shape_and_decimation(integrator_client, bpm, series_data):
    end = START + timedelta(hours=1)
    response = get(
        integrator_client,
        f"instruments/{bpm.pk}/series",
        start=START.isoformat(),
        end=end.isoformat(),
        max_points=500,
    )
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    data = body(response)
    assert set(data) == {"instrument", "start", "end", "resolution", "max_points", "series"}
    assert data["instrument"] == {
        "id": bpm.pk,
        "name": "10AE",
        "kind": "bpm",
        "channels": ["top_in", "bot_in", "bot_out", "top_out"],
    }
    assert data["resolution"] == "raw"
    assert data["max_points"] == 500
    assert set(data["series"]) == {"top_in", "bot_in", "bot_out", "top_out"}
    in_range = series_data.ts_us < int(end.timestamp() * 1e6)
    for i, name in enumerate(data["series"]):
        points = data["series"][name]
        assert 250 <= len(points) <= 500
        times = [t for t, _ in points]
        assert times == sorted(times)
        values = [v for _, v in points]
        assert max(values) == series_data.values[in_range, i].max()
        assert min(values) == series_data.values[in_range, i].min()
    assert [v for _, v in data["series"]["bot_out"] if v == 1e6] == [1e6]


def test_long_ranges_and_ranges_before_the_watermark_read_the_minute_table(
    integrator_client, bpm, series_data, settings
):
    settings.MONITORING_SERIES_RAW_MAX_S = 3600
    two_hours = {"start": START.isoformat(), "end": (START + timedelta(hours=2)).isoformat()}
    data = body(get(integrator_client, f"instruments/{bpm.pk}/series", **two_hours))
    assert data["resolution"] == "minute"
    points = data["series"]["bot_out"]
    assert len(points) == 2 * 120  # each minute: its min and its max
    assert max(v for _, v in points) == 1e6  # the spike survives in the minute's max
    assert np.isclose(min(v for _, v in points), series_data.values[:, 2].min())

    RetentionState.objects.create(watermark=START + timedelta(minutes=30))
    short = {"start": START.isoformat(), "end": (START + timedelta(minutes=40)).isoformat()}
    assert (
        body(get(integrator_client, f"instruments/{bpm.pk}/series", **short))["resolution"]
        == "minute"
    )


def test_multi_instrument_call(integrator_client, bpms):
    ids = ",".join(str(b.pk) for b in bpms)
    data = body(get(integrator_client, "series", instruments=ids, start=START.isoformat()))
    assert [r["instrument"]["id"] for r in data["results"]] == [b.pk for b in bpms]
    assert all(r["series"]["top_in"] == [] for r in data["results"])


def test_closed_ranges_are_cacheable_and_revalidate_with_etag(integrator_client, bpm, series_data):
    params = {"start": START.isoformat(), "end": (START + timedelta(minutes=5)).isoformat()}
    first = get(integrator_client, f"instruments/{bpm.pk}/series", **params)
    assert first["Cache-Control"].startswith("private, max-age=")
    etag = first["ETag"]
    again = integrator_client.get(
        f"/api/v1/monitoring/instruments/{bpm.pk}/series", params, HTTP_IF_NONE_MATCH=etag
    )
    assert again.status_code == 304
    open_range = get(integrator_client, f"instruments/{bpm.pk}/series")  # default: the last hour
    assert open_range["Cache-Control"] == "private, no-cache"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-11-02T00:00:00Z", "end": "2026-11-01T00:00:00Z"}, "start"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-11-01T00:00:00"}, "end"),
        ({"start": "0001-01-01T00:00:00+05:00"}, "start"),  # before UTC's year 1
        ({"max_points": 2}, "max_points"),
        ({"max_points": 10**9}, "max_points"),
    ],
)
def test_bad_query_parameters_are_named(integrator_client, bpm, params, field):
    response = integrator_client.get(f"/api/v1/monitoring/instruments/{bpm.pk}/series", params)
    assert response.status_code == 400
    assert field in response.json()


def test_multi_call_refuses_unknown_ids(integrator_client, bpm):
    response = integrator_client.get(
        "/api/v1/monitoring/series", {"instruments": f"{bpm.pk},999999"}
    )
    assert response.status_code == 400
    assert "999999" in response.json()["detail"]
    assert (
        integrator_client.get("/api/v1/monitoring/series", {"instruments": "a,b"}).status_code
        == 400
    )


def test_epoch_millisecond_bounds(integrator_client, bpm, series_data):
    start_ms = int(START.timestamp() * 1000)
    data = body(
        get(
            integrator_client, f"instruments/{bpm.pk}/series", start=start_ms, end=start_ms + 60_000
        )
    )
    assert data["start"] == START.isoformat()
    assert all(start_ms <= t < start_ms + 60_000 for t, _ in data["series"]["top_in"])


@pytest.mark.parametrize("path", ["instruments/", "instruments/1/series", "series?instruments=1"])
def test_series_api_needs_authentication(client, bpm, path):
    assert client.get(f"/api/v1/monitoring/{path}").status_code in (401, 403)
