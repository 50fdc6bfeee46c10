"""Every PNM test end to end: the API → a worker (SNMP to a simulated modem) → the TFTP
receiver → staging → the transaction's parsed and plot endpoints.

Real SNMP and TFTP over 127.0.0.1, a real worker, PostgreSQL and Redis.
"""

from __future__ import annotations

import struct

import pytest

from captures import services
from captures.models import TERMINAL_STATES, Operation, OperationState, Transaction
from captures.pnm import parse
from captures.tests.helpers import assert_accounted
from devices.links.pnm import PnmTest, Scope
from tests.factories import register_modem
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CAPTURES = "/api/v1/captures/captures/"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Small, valid parameters where a test has them (the defaults are checked elsewhere).
PARAMETERS: dict[PnmTest, dict] = {
    PnmTest.HISTOGRAM: {"timeout_s": 1},
    PnmTest.FEC_SUMMARY: {"summary_type": "10min"},
}


def finished(operation_id: str, timeout: float = 60) -> Operation:
    """Wait for a terminal state; the sweeper is run here as beat would every 10 s."""

    def poll():
        services.sweep()
        return Operation.objects.filter(
            operation_id=operation_id, state__in=TERMINAL_STATES
        ).first()

    return wait_until(poll, timeout=timeout, interval=0.2)


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
    done = finished(capture_id)
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
        assert parsed.json()["header"]["test_type"] == entry["test"]
        plot = operator_client.get(entry["links"]["plot"])
        assert plot.status_code == 200
        assert plot.content.startswith(PNG_MAGIC)
