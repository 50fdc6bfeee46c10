"""Every PNM test end to end: the API → a worker (SNMP to a simulated modem) → the TFTP
receiver → staging → the transaction's parsed and plot endpoints.

Real SNMP and TFTP over 127.0.0.1, a real worker, PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import struct

import pytest

from captures.analysis import read_transaction
from captures.models import Operation, OperationState, Transaction
from captures.pnm import parse, parse_snmp_spectrum
from captures.tests.helpers import assert_accounted
from captures.tests.test_pipeline import finished, start
from devices.links.pnm import MeasStatus, PnmTest, Scope, validate_parameters
from tests.factories import register_modem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CAPTURES = "/api/v1/captures/captures/"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Small, valid parameters where a test has them (the defaults are checked elsewhere).
PARAMETERS: dict[PnmTest, dict] = {
    PnmTest.HISTOGRAM: {"timeout_s": 1},
    PnmTest.FEC_SUMMARY: {"summary_type": "10min"},
}


def expected_files(modem, test: PnmTest) -> list[tuple[str, int]]:
    """(file test type, channel id) a single capture of ``test`` must store, from the
    simulated modem's own configuration (not from what the pipeline discovered)."""
    if test.scope is Scope.DS_OFDM:
        channel_ids = [channel_id for _, channel_id in modem.channels]
    elif test.scope is Scope.US_OFDMA:
        channel_ids = [channel_id for _, channel_id in modem.ofdma_channels]
    else:
        channel_ids = [0]
    return sorted((spec.test_type, c) for c in channel_ids for spec in test.files)


@pytest.mark.parametrize("test", list(PnmTest), ids=lambda test: test.name)
def test_a_single_capture_of_every_test_is_stored_parsed_and_plotted(
    test, pnm_worker, farm, operator_client
):
    sim = farm(1)
    modem = register_modem(sim[0])
    body = {"modem": modem.pk, "test": test.value}
    if test in PARAMETERS:
        body["parameters"] = PARAMETERS[test]

    started = operator_client.post(CAPTURES, body, format="json")

    assert started.status_code == 201, started.content
    capture_id = started.json()["capture_id"]
    assert started["Location"].endswith(f"{CAPTURES}{capture_id}/")
    done = finished(Operation.objects.get(operation_id=capture_id))
    assert done.state == OperationState.COMPLETED, done.last_error
    assert_accounted(done)
    wanted = expected_files(sim[0], test)
    assert (done.planned_ticks, done.expected, done.collected) == (1, len(wanted), len(wanted))
    records = list(Transaction.objects.filter(capture__operation=done))
    assert sorted((r.pnm_test_type, r.channel_id) for r in records) == wanted
    for record in records:
        data = operator_client.get(
            f"/api/v1/captures/transactions/{record.transaction_id}/download/"
        )
        raw = b"".join(data.streaming_content)
        if test.spec.walked:  # the SNMP-only spectrum: the walked rows, no header
            segments = parse_snmp_spectrum(raw)
            bins = validate_parameters(test, None)["bins_per_segment"]  # the defaults:
            centres = list(range(93_000_000, 993_000_001, 7_500_000))  # 93 to 993 MHz
            assert [segment.center_hz for segment in segments] == centres
            assert {len(segment.amplitudes_db) for segment in segments} == {bins}
            continue
        assert raw[:3] == b"PNN"
        parsed = parse(raw)
        assert parsed.header.test_type == record.pnm_test_type
        if test.scope in (Scope.DS_OFDM, Scope.US_OFDMA):
            # the channel id the simulator patched into byte 10 is the one we recorded
            offset = 6 if record.pnm_test_type == PnmTest.FEC_SUMMARY.value else 10
            assert struct.unpack_from("B", raw, offset)[0] == record.channel_id

    status = operator_client.get(f"{CAPTURES}{capture_id}/").json()
    assert status["state"] == "completed"
    assert status["test"] == test.value
    assert (status["expected"], status["collected"], status["shortfall"]) == (
        len(wanted),
        len(wanted),
        0,
    )
    files = status["files"]
    assert sorted((f["test"], f["channel_id"]) for f in files) == wanted
    for entry in files:
        assert entry["state"] == "stored"
        parsed = operator_client.get(entry["links"]["parsed"])
        assert parsed.status_code == 200, parsed.content
        if not test.spec.walked:
            assert parsed.json()["header"]["test_type"] == entry["test"]
        plot = operator_client.get(entry["links"]["plot"])
        assert plot.status_code == 200
        assert plot.content.startswith(PNG_MAGIC)


def test_ofdm_performance_1_keeps_rxmer_profiles_and_fec_summaries_in_one_group(
    pnm_worker, beat, farm, viewer_client
):
    """Three ticks at 0, 2 and 4 s on two channels: RxMER on each, the modulation profile
    on the middle one (2), FEC summaries on the final one: 3x2 + 2 + 2 = 10 files."""
    sim = farm(1)
    operation = start(register_modem(sim[0]), name="multi_rxmer", mode="ofdm_performance_1")

    done = finished(operation)

    assert done.state == OperationState.COMPLETED, done.last_error
    assert_accounted(done)
    assert (done.planned_ticks, done.expected, done.collected) == (3, 10, 10)
    records = Transaction.objects.filter(capture__operation=done)
    assert {record.capture_group_id for record in records} == {done.capture_group_id}
    by_test: dict[str, list[int]] = {}
    for record in records:
        by_test.setdefault(record.pnm_test_type, []).append(record.capture.tick)
    assert sorted(by_test[PnmTest.RXMER.value]) == [1, 1, 2, 2, 3, 3]
    assert by_test[PnmTest.MODULATION_PROFILE.value] == [2, 2]
    assert by_test[PnmTest.FEC_SUMMARY.value] == [3, 3]

    analysis = viewer_client.get(
        f"/api/v1/captures/operations/{done.operation_id}/analysis/",
        {"type": "ofdm-profile-performance"},
    )
    assert analysis.status_code == 200, analysis.content
    body = b"".join(analysis.streaming_content) if analysis.streaming else analysis.content
    result = json.loads(body)
    channels = {channel["channel_id"]: channel for channel in result["channels"]}
    assert sorted(channels) == [193, 194]
    for channel in channels.values():
        assert channel["rxmer_captures"] == 3  # the mean over the run's three RxMER files
        assert channel["profiles"], channel
        assert all(profile["fec"] for profile in channel["profiles"])  # from the FEC summary


def test_upstream_pre_equalisation_stores_both_files_of_every_trigger(pnm_worker, beat, farm):
    sim = farm(1)
    operation = start(register_modem(sim[0]), 2, 2, name="multi_us_pre_equalization")

    done = finished(operation)

    assert done.state == OperationState.COMPLETED, done.last_error
    assert_accounted(done)
    ((_, ofdma_channel),) = sim[0].ofdma_channels
    per_slot = {
        (row.test, row.channel_id): (row.planned, row.collected) for row in done.channels.all()
    }
    assert per_slot == {
        ("US_PRE_EQUALIZER_COEF", ofdma_channel): (2, 2),
        ("US_PRE_EQUALIZER_COEF_LAST_UPDATE", ofdma_channel): (2, 2),
    }
    records = Transaction.objects.filter(capture__operation=done)
    kinds = sorted(parse(read_transaction(record)).header.file_type for record in records)
    assert kinds == [6, 6, 7, 7]  # coefficients and last update, twice


def test_a_test_the_modem_ends_in_error_fails_with_its_reason(pnm_worker, farm, operator_client):
    sim = farm(1)
    sim.call(sim[0].failing_tests.__setitem__, PnmTest.CONSTELLATION, MeasStatus.ERROR)
    modem = register_modem(sim[0])

    started = operator_client.post(
        CAPTURES, {"modem": modem.pk, "test": PnmTest.CONSTELLATION.value}, format="json"
    )

    done = finished(Operation.objects.get(operation_id=started.json()["capture_id"]))
    assert done.state == OperationState.FAILED
    assert_accounted(done)
    assert (done.expected, done.collected, done.failed) == (2, 0, 2)
    reasons = operator_client.get(f"{CAPTURES}{done.operation_id}/").json()["reasons"]
    assert reasons == {"failed": {"CaptureFailed": 2}}
    assert "measurement ended with ERROR" in done.last_error
