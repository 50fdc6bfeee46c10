"""The captures API: authentication, validation (400 naming the field), shapes, secrets."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from captures.models import Operation, OperationState
from devices.models import CableModem
from tests.factories import COMMUNITY, make_modem, make_operation, stored_transaction
from tests.helpers import assert_400_naming, role_user, token_client

pytestmark = pytest.mark.django_db

MODEMS = "/api/v1/devices/modems/"
OPERATIONS = "/api/v1/captures/operations/"
TRANSACTIONS = "/api/v1/captures/transactions/"
V3_KEYS = ("auth-key-123456", "priv-key-654321")


MODEM_MAC = "02:00:5e:00:01:01"  # make_modem()'s


def start_body(**changes) -> dict:
    body = {
        "modem": MODEM_MAC,
        "test": "multi_rxmer",
        "duration_s": 60,
        "sample_interval_s": 10,
    }
    return {**body, **changes}


def test_start_creates_rows_and_fixed_rate_schedule(operator_client):
    modem = make_modem()
    body = start_body(modem="02005E000101", channel_ids=[193])  # any MAC spelling
    response = operator_client.post(OPERATIONS, body, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{16}", body["operation_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", body["capture_group_id"])
    assert body["operation"] == {
        "name": "multi_rxmer",
        "measure_mode": "continuous",
        "test": "DS_OFDM_RXMER_PER_SUBCAR",
        "parameters": {"DS_OFDM_RXMER_PER_SUBCAR": {}},
    }
    assert body["operation_status"]["state"] == "running"
    assert body["metadata"]["mac_address"] == MODEM_MAC
    assert body["modem"] == modem.pk
    operation = Operation.objects.get(operation_id=body["operation_id"])
    assert operation.expected == 7  # 6 ticks in 60 s at 10 s, plus the final capture
    assert operation.started_at is not None
    assert operation.next_tick_at == operation.started_at  # the dispatcher sends tick 1 now
    assert operation.tick_due_at(2) == operation.started_at + timedelta(seconds=10)


def test_start_with_registered_modem_id(operator_client):
    modem = make_modem()
    response = operator_client.post(OPERATIONS, start_body(modem=modem.pk), format="json")
    assert response.status_code == 201
    assert response.json()["modem"] == modem.pk


def test_an_all_digit_mac_is_a_mac_not_an_id(operator_client):
    modem = make_modem(mac_address="00:11:22:33:44:55")
    response = operator_client.post(OPERATIONS, start_body(modem="001122334455"), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["modem"] == modem.pk


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"modem": 999999}, ["modem"]),
        ({"modem": "not-a-modem"}, ["modem"]),
        ({"modem": "02:00:5e:00:09:99"}, ["modem"]),
        ({"modem": True}, ["modem"]),
        ({"modem": {"mac_address": "02:00:5e:00:09:99", "ip_address": "10.9.9.9"}}, ["modem"]),
        ({"duration_s": 5, "sample_interval_s": 10}, ["duration_s"]),
        ({"test": "multi_everything"}, ["test"]),
        ({"measure_mode": "single"}, ["measure_mode"]),
        (
            {"test": "multi_ds_channel_estimation", "measure_mode": "ofdm_performance_1"},
            ["measure_mode"],
        ),
        ({"test": "single_capture"}, ["test"]),  # single captures start at …/captures/
        ({"parameters": {"timeout_s": 5}}, ["parameters", "timeout_s"]),  # RxMER takes none
        (
            {"test": "multi_fec_summary", "parameters": {"summary_type": "1h"}},
            ["parameters", "summary_type"],
        ),
        ({"test": "multi_histogram", "parameters": {"timeout_s": 0}}, ["parameters", "timeout_s"]),
        (
            {"test": "multi_histogram", "parameters": {"timeout_s": "ten"}},
            ["parameters", "timeout_s"],
        ),
        ({"parameters": ["not", "an", "object"]}, ["parameters"]),
        ({"sample_interval_s": 0}, ["sample_interval_s"]),
        ({"channel_ids": [193, 999]}, ["channel_ids"]),
    ],
)
def test_bad_start_is_400_naming_the_field(operator_client, changes, path):
    make_modem()
    response = operator_client.post(OPERATIONS, start_body(**changes), format="json")

    assert_400_naming(response, path)
    assert not Operation.objects.exists()


def test_status_stop_and_status_after_stop(operator_client):
    operation = make_operation()
    status_url = f"{OPERATIONS}{operation.operation_id}/status/"

    running = operator_client.get(status_url).json()
    assert set(running) >= {"state", "collected", "time_remaining", "updated"}
    assert running["state"] == "running"
    assert 0 < running["time_remaining"] <= 60

    stopped = operator_client.post(f"{OPERATIONS}{operation.operation_id}/stop/").json()
    assert stopped["state"] == "stopped"
    assert Operation.objects.get(pk=operation.pk).next_tick_at is None
    assert operator_client.get(status_url).json() == stopped  # from the database, stable
    again = operator_client.post(f"{OPERATIONS}{operation.operation_id}/stop/")
    assert again.status_code == 200
    assert Operation.objects.get(pk=operation.pk).state == OperationState.STOPPED


def test_unknown_operation_is_404(operator_client):
    assert operator_client.get(f"{OPERATIONS}0123456789abcdef/status/").status_code == 404


def test_feed_is_cursor_paginated_and_filtered(operator_client):
    first = make_operation(make_modem(1))
    second = make_operation(make_modem(2))
    records = [stored_transaction(first, tick) for tick in (1, 2, 3)]
    records.append(stored_transaction(second, 1))

    page = operator_client.get(TRANSACTIONS, {"page_size": 2}).json()
    assert [r["transaction_id"] for r in page["results"]] == [r.transaction_id for r in records[:2]]
    following = APIClient.get(operator_client, page["next"]).json()
    assert [r["transaction_id"] for r in following["results"]] == [
        r.transaction_id for r in records[2:]
    ]
    assert following["next"] is None

    by_operation = operator_client.get(TRANSACTIONS, {"operation": second.operation_id}).json()
    assert [r["transaction_id"] for r in by_operation["results"]] == [records[3].transaction_id]
    by_mac = operator_client.get(TRANSACTIONS, {"modem": "02005e000101"}).json()
    assert len(by_mac["results"]) == 3
    by_test = operator_client.get(TRANSACTIONS, {"test": "DS_OFDM_CHAN_EST_COEF"}).json()
    assert by_test["results"] == []


@pytest.mark.parametrize(
    ("params", "field"), [({"test": "NOPE"}, "test"), ({"modem": "x"}, "modem")]
)
def test_feed_bad_filter_is_400(operator_client, params, field):
    response = operator_client.get(TRANSACTIONS, params)
    assert response.status_code == 400
    assert field in response.json()


def test_transaction_shape_and_downloads(operator_client):
    operation = make_operation()
    record = stored_transaction(operation)

    body = operator_client.get(f"{TRANSACTIONS}{record.transaction_id}/").json()
    assert body["filename"] == record.filename
    assert body["filename"].endswith(".bin.zst")
    assert body["compression"]["codec"] == "zstd"
    assert body["compression"]["level"] == 3
    assert body["compression"]["size_before"] > body["compression"]["size_after"]
    assert body["operation_id"] == operation.operation_id

    plain = operator_client.get(f"{TRANSACTIONS}{record.transaction_id}/download/")
    data = b"".join(plain.streaming_content)
    assert hashlib.sha256(data).hexdigest() == record.sha256
    assert data[:3] == b"PNN"
    raw = operator_client.get(f"{TRANSACTIONS}{record.transaction_id}/download/", {"raw": "1"})
    stored = b"".join(raw.streaming_content)
    assert len(stored) == record.size_after
    assert stored[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic


def test_archive_is_a_streamed_zip_of_every_file(operator_client):
    operation = make_operation()
    records = [
        stored_transaction(operation, tick, channel) for tick in (1, 2) for channel in (193, 194)
    ]

    response = operator_client.get(f"{OPERATIONS}{operation.operation_id}/archive/")

    assert response.status_code == 200
    assert response.streaming
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        names = archive.namelist()
        assert names == [r.filename.removesuffix(".zst") for r in records]
        for record in records:
            data = archive.read(record.filename.removesuffix(".zst"))
            assert hashlib.sha256(data).hexdigest() == record.sha256


def test_every_endpoint_needs_auth():
    operation = make_operation()
    record = stored_transaction(operation)
    anonymous = APIClient()
    op = f"{OPERATIONS}{operation.operation_id}/"
    txn = f"{TRANSACTIONS}{record.transaction_id}/"
    for method, url in [
        ("get", OPERATIONS),
        ("post", OPERATIONS),
        ("get", op),
        ("get", f"{op}status/"),
        ("post", f"{op}stop/"),
        ("get", f"{op}archive/"),
        ("get", TRANSACTIONS),
        ("get", txn),
        ("get", f"{txn}download/"),
    ]:
        response = getattr(anonymous, method)(url)
        assert response.status_code in (401, 403), (method, url)
    assert Operation.objects.get(pk=operation.pk).state == OperationState.RUNNING


def test_the_overwrite_attack_of_issue_12_is_refused(operator_client, django_user_model):
    """A plain user's token gets 403; a role that may start captures gets 409. Either way
    the registered modem keeps its address and credentials."""
    modem = make_modem()
    before = CableModem.objects.values().get(pk=modem.pk)
    attack = start_body(
        modem={
            "mac_address": modem.mac_address,
            "ip_address": "10.9.9.9",
            "snmp": {"version": "v2c", "community": "attacker"},
        }
    )
    plain = token_client(django_user_model.objects.create_user("plain"))
    assert plain.post(OPERATIONS, attack, format="json").status_code == 403
    integrator = token_client(role_user("integrator", "integrator"))
    for client in (integrator, operator_client):
        response = client.post(OPERATIONS, attack, format="json")
        assert response.status_code == 409, response.content
        assert f'"modem": {modem.pk}' in response.json()["detail"]
        assert "attacker" not in response.content.decode()
    assert CableModem.objects.values().get(pk=modem.pk) == before
    assert not Operation.objects.exists()


def test_secrets_never_in_api_output(operator_client):
    """Registered through the registry API, used by operations: never output."""
    v3 = {
        "mac_address": "aa:bb:cc:dd:ee:03",
        "ip_address": "127.0.0.1",
        "snmp_version": "v3",
        "snmp_username": "pnm-user",
        "auth_protocol": "sha",
        "auth_key": V3_KEYS[0],
        "priv_protocol": "aes",
        "priv_key": V3_KEYS[1],
    }
    v2c = {"mac_address": MODEM_MAC, "ip_address": "127.0.0.1", "community": COMMUNITY}
    outputs = [
        operator_client.post(MODEMS, v2c, format="json"),
        operator_client.post(MODEMS, v3, format="json"),
    ]
    outputs += [
        operator_client.post(OPERATIONS, start_body(), format="json"),
        operator_client.post(OPERATIONS, start_body(modem="aa:bb:cc:dd:ee:03"), format="json"),
    ]
    operation = Operation.objects.first()
    assert operation is not None
    stored_transaction(operation)
    outputs += [
        operator_client.get(OPERATIONS),
        operator_client.get(f"{OPERATIONS}{operation.operation_id}/"),
        operator_client.get(f"{OPERATIONS}{operation.operation_id}/status/"),
        operator_client.get(TRANSACTIONS),
        operator_client.get("/api/schema/"),
    ]
    assert all(response.status_code in (200, 201) for response in outputs)
    for response in outputs:
        for secret in (COMMUNITY, *V3_KEYS):
            assert secret.encode() not in response.content
    modem = CableModem.objects.get(mac_address="aa:bb:cc:dd:ee:03")
    assert modem.auth_key == V3_KEYS[0]
    for secret in (COMMUNITY, *V3_KEYS):
        assert secret not in repr(modem)
        assert secret not in repr(modem.snmp_target(1.0, 0))
