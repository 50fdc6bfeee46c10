"""The single-capture API: start, refuse bad input per field, show state and files."""

from __future__ import annotations

import pytest

from captures.models import Operation
from tests.factories import make_modem, make_operation
from tests.helpers import assert_400_naming

pytestmark = pytest.mark.django_db

CAPTURES = "/api/v1/captures/captures/"


def test_a_single_capture_starts_with_its_parameters_completed(operator_client):
    modem = make_modem()

    response = operator_client.post(
        CAPTURES, {"modem": modem.mac_address, "test": "DS_HISTOGRAM"}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    operation = Operation.objects.get(operation_id=body["capture_id"])
    assert response["Location"] == body["status_url"]
    assert body["status_url"].endswith(f"{CAPTURES}{operation.operation_id}/")
    assert (operation.name, operation.measure_mode, operation.test) == (
        "single_capture",
        "single",
        "DS_HISTOGRAM",
    )
    assert body["parameters"] == {"DS_HISTOGRAM": {"timeout_s": 10}}  # the default filled in
    assert (body["state"], body["planned_ticks"], body["expected"], body["files"]) == (
        "running",
        1,
        1,
        [],
    )
    assert Operation.objects.get(pk=operation.pk).next_tick_at is None


def test_spectrum_parameters_are_kept_as_given(operator_client):
    modem = make_modem()
    wanted = {
        "first_segment_center_hz": 300_000_000,
        "last_segment_center_hz": 900_000_000,
        "segment_span_hz": 7_500_000,
        "window_function": "blackman_harris",
    }

    response = operator_client.post(
        CAPTURES,
        {"modem": modem.pk, "test": "SPECTRUM_ANALYZER", "parameters": wanted},
        format="json",
    )

    assert response.status_code == 201, response.content
    kept = response.json()["parameters"]["SPECTRUM_ANALYZER"]
    assert {name: kept[name] for name in wanted} == wanted
    assert kept["bins_per_segment"] == 256  # the MIB default


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"test": "DS_EVERYTHING"}, ["test"]),
        ({"test": "multi_rxmer"}, ["test"]),  # a family is not a test
        ({"modem": 999_999}, ["modem"]),
        ({"channel_ids": [300]}, ["channel_ids"]),
        ({"parameters": {"summary_type": "10min"}}, ["parameters", "summary_type"]),  # RxMER
        (
            {"test": "DS_OFDM_FEC_SUMMARY", "parameters": {"summary_type": "weekly"}},
            ["parameters", "summary_type"],
        ),
        (
            {"test": "DS_CONSTELLATION_DISP", "parameters": {"modulation_order_offset": 11}},
            ["parameters", "modulation_order_offset"],
        ),
        (
            {"test": "DS_HISTOGRAM", "parameters": {"timeout_s": True}},
            ["parameters", "timeout_s"],
        ),
        (
            {
                "test": "SPECTRUM_ANALYZER",
                "parameters": {
                    "first_segment_center_hz": 900_000_000,
                    "last_segment_center_hz": 300_000_000,
                },
            },
            ["parameters", "last_segment_center_hz"],
        ),
        (
            {
                "test": "SPECTRUM_ANALYZER",
                "parameters": {
                    "first_segment_center_hz": 0,
                    "last_segment_center_hz": 1_794_000_000,
                    "segment_span_hz": 1_000_000,
                },
            },
            ["parameters", "segment_span_hz"],
        ),
        (
            {"test": "SPECTRUM_ANALYZER", "parameters": {"window_function": "kaiser"}},
            ["parameters", "window_function"],
        ),
    ],
)
def test_bad_input_is_400_naming_the_field(operator_client, changes, path):
    modem = make_modem()
    body = {"modem": modem.pk, "test": "DS_OFDM_RXMER_PER_SUBCAR", **changes}

    response = operator_client.post(CAPTURES, body, format="json")

    assert_400_naming(response, path)
    assert not Operation.objects.exists()


def test_only_operators_start_captures_and_viewers_read_them(viewer_client, operator_client):
    modem = make_modem()
    body = {"modem": modem.pk, "test": "DS_OFDM_MODULATION_PROFILE"}
    assert viewer_client.post(CAPTURES, body, format="json").status_code == 403
    started = operator_client.post(CAPTURES, body, format="json").json()
    make_operation(modem)  # a multi-capture operation is not a single capture

    listed = viewer_client.get(CAPTURES).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [row["capture_id"] for row in rows] == [started["capture_id"]]
    detail = viewer_client.get(f"{CAPTURES}{started['capture_id']}/")
    assert detail.status_code == 200
    assert detail.json()["test"] == "DS_OFDM_MODULATION_PROFILE"
