"""The captures API: authentication, validation (400 naming the field), shapes, secrets."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile

import pytest
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from captures.models import Operation, OperationState
from devices.models import CableModem
from tests.factories import COMMUNITY, make_modem, make_operation, stored_transaction

pytestmark = pytest.mark.django_db

OPERATIONS = "/api/v1/captures/operations/"
TRANSACTIONS = "/api/v1/captures/transactions/"
V3_KEYS = ("auth-key-123456", "priv-key-654321")


def inline_modem(**changes) -> dict:
    modem = {
        "mac_address": "AA:BB:CC:DD:EE:01",
        "ip_address": "127.0.0.1",
        "snmp_port": 16161,
        "snmp": {"version": "v2c", "community": COMMUNITY},
    }
    return {**modem, **changes}


def start_body(**changes) -> dict:
    body = {
        "modem": inline_modem(),
        "test": "multi_rxmer",
        "duration_s": 60,
        "sample_interval_s": 10,
    }
    return {**body, **changes}


def test_start_creates_rows_and_fixed_rate_schedule(user_client):
    response = user_client.post(OPERATIONS, start_body(channel_ids=[193]), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{16}", body["operation_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", body["capture_group_id"])
    assert body["operation"] == {"name": "multi_rxmer", "measure_mode": "continuous"}
    assert body["operation_status"]["state"] == "running"
    assert body["metadata"]["mac_address"] == "aa:bb:cc:dd:ee:01"
    operation = Operation.objects.get(operation_id=body["operation_id"])
    assert operation.expected == 7  # 6 ticks in 60 s at 10 s, plus the final capture
    task = PeriodicTask.objects.get(name=operation.schedule_name)
    assert task.task == "captures.tasks.trigger_capture"
    assert task.interval is not None
    assert (task.interval.every, task.interval.period) == (10, "seconds")
    assert CableModem.objects.get(mac_address="aa:bb:cc:dd:ee:01").community == COMMUNITY


def test_start_with_registered_modem_id(user_client):
    modem = make_modem()
    response = user_client.post(OPERATIONS, start_body(modem=modem.pk), format="json")
    assert response.status_code == 201
    assert response.json()["modem"] == modem.pk


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"modem": 999999}, ["modem"]),
        ({"modem": "not-a-modem"}, ["modem"]),
        ({"duration_s": 5, "sample_interval_s": 10}, ["duration_s"]),
        ({"test": "multi_everything"}, ["test"]),
        ({"measure_mode": "ofdm_performance_1"}, ["measure_mode"]),
        ({"sample_interval_s": 0}, ["sample_interval_s"]),
        ({"channel_ids": [193, 999]}, ["channel_ids"]),
        ({"modem": inline_modem(mac_address="aa:bb:cc")}, ["modem", "mac_address"]),
        ({"modem": inline_modem(ip_address="300.1.1.1")}, ["modem", "ip_address"]),
        ({"modem": inline_modem(snmp={"version": "v2c"})}, ["modem", "snmp", "community"]),
        ({"modem": inline_modem(snmp={"version": "v3"})}, ["modem", "snmp", "username"]),
    ],
)
def test_bad_start_is_400_naming_the_field(user_client, changes, path):
    response = user_client.post(OPERATIONS, start_body(**changes), format="json")

    assert response.status_code == 400, response.content
    errors = response.json()
    for key in path:
        assert key in errors, errors
        errors = errors[key]
    assert not Operation.objects.exists()


def test_status_stop_and_status_after_stop(user_client):
    operation = make_operation()
    status_url = f"{OPERATIONS}{operation.operation_id}/status/"

    running = user_client.get(status_url).json()
    assert set(running) >= {"state", "collected", "time_remaining", "updated"}
    assert running["state"] == "running"
    assert 0 < running["time_remaining"] <= 60

    stopped = user_client.post(f"{OPERATIONS}{operation.operation_id}/stop/").json()
    assert stopped["state"] == "stopped"
    assert not PeriodicTask.objects.filter(name=operation.schedule_name).exists()
    assert user_client.get(status_url).json() == stopped  # from the database, stable
    again = user_client.post(f"{OPERATIONS}{operation.operation_id}/stop/")
    assert again.status_code == 200
    assert Operation.objects.get(pk=operation.pk).state == OperationState.STOPPED


def test_unknown_operation_is_404(user_client):
    assert user_client.get(f"{OPERATIONS}0123456789abcdef/status/").status_code == 404


def test_feed_is_cursor_paginated_and_filtered(user_client):
    first = make_operation(make_modem(1))
    second = make_operation(make_modem(2))
    records = [stored_transaction(first, tick) for tick in (1, 2, 3)]
    records.append(stored_transaction(second, 1))

    page = user_client.get(TRANSACTIONS, {"page_size": 2}).json()
    assert [r["transaction_id"] for r in page["results"]] == [r.transaction_id for r in records[:2]]
    following = APIClient.get(user_client, page["next"]).json()
    assert [r["transaction_id"] for r in following["results"]] == [
        r.transaction_id for r in records[2:]
    ]
    assert following["next"] is None

    by_operation = user_client.get(TRANSACTIONS, {"operation": second.operation_id}).json()
    assert [r["transaction_id"] for r in by_operation["results"]] == [records[3].transaction_id]
    by_mac = user_client.get(TRANSACTIONS, {"modem": "02005e000101"}).json()
    assert len(by_mac["results"]) == 3
    by_test = user_client.get(TRANSACTIONS, {"test": "DS_OFDM_CHAN_EST_COEF"}).json()
    assert by_test["results"] == []


@pytest.mark.parametrize(
    ("params", "field"), [({"test": "NOPE"}, "test"), ({"modem": "x"}, "modem")]
)
def test_feed_bad_filter_is_400(user_client, params, field):
    response = user_client.get(TRANSACTIONS, params)
    assert response.status_code == 400
    assert field in response.json()


def test_transaction_shape_and_downloads(user_client):
    operation = make_operation()
    record = stored_transaction(operation)

    body = user_client.get(f"{TRANSACTIONS}{record.transaction_id}/").json()
    assert body["filename"] == record.filename
    assert body["filename"].endswith(".bin.zst")
    assert body["compression"]["codec"] == "zstd"
    assert body["compression"]["level"] == 3
    assert body["compression"]["size_before"] > body["compression"]["size_after"]
    assert body["operation_id"] == operation.operation_id

    plain = user_client.get(f"{TRANSACTIONS}{record.transaction_id}/download/")
    data = b"".join(plain.streaming_content)
    assert hashlib.sha256(data).hexdigest() == record.sha256
    assert data[:3] == b"PNN"
    raw = user_client.get(f"{TRANSACTIONS}{record.transaction_id}/download/", {"raw": "1"})
    stored = b"".join(raw.streaming_content)
    assert len(stored) == record.size_after
    assert stored[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic


def test_archive_is_a_streamed_zip_of_every_file(user_client):
    operation = make_operation()
    records = [
        stored_transaction(operation, tick, channel) for tick in (1, 2) for channel in (193, 194)
    ]

    response = user_client.get(f"{OPERATIONS}{operation.operation_id}/archive/")

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


def test_secrets_never_in_api_output(user_client):
    v3 = inline_modem(
        mac_address="aa:bb:cc:dd:ee:03",
        snmp={
            "version": "v3",
            "username": "pnm-user",
            "auth_protocol": "sha",
            "auth_key": V3_KEYS[0],
            "priv_protocol": "aes",
            "priv_key": V3_KEYS[1],
        },
    )
    outputs = [
        user_client.post(OPERATIONS, start_body(), format="json"),
        user_client.post(OPERATIONS, start_body(modem=v3), format="json"),
    ]
    operation = Operation.objects.first()
    assert operation is not None
    stored_transaction(operation)
    outputs += [
        user_client.get(OPERATIONS),
        user_client.get(f"{OPERATIONS}{operation.operation_id}/"),
        user_client.get(f"{OPERATIONS}{operation.operation_id}/status/"),
        user_client.get(TRANSACTIONS),
        user_client.get("/api/schema/"),
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
