"""The admin pages of the PNM records: they render, stay read-only, never show secrets."""

from __future__ import annotations

import pytest

from captures.models import Operation, OperationState
from tests.factories import COMMUNITY, make_operation, stored_transaction

pytestmark = pytest.mark.django_db


def test_changelists_and_records_render_without_secrets(admin_client):
    operation = make_operation()
    record = stored_transaction(operation)
    pages = [
        "/admin/captures/operation/?state__exact=running",
        f"/admin/captures/operation/?q={operation.operation_id}",
        "/admin/captures/transaction/?pnm_test_type__exact=DS_OFDM_RXMER_PER_SUBCAR",
        f"/admin/captures/transaction/?q={operation.modem.mac_address}",
        f"/admin/captures/transaction/{record.pk}/change/",
        "/admin/captures/capture/",
        "/admin/devices/cablemodem/",
        f"/admin/devices/cablemodem/{operation.modem.pk}/change/",
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert COMMUNITY.encode() not in response.content, page
    detail = admin_client.get(f"/admin/captures/transaction/{record.pk}/change/").content
    assert record.transaction_id.encode() in detail
    assert b"/download/?raw=1" in detail
    assert b'name="_save"' not in detail  # read-only


def test_stop_action(admin_client):
    operation = make_operation()

    response = admin_client.post(
        "/admin/captures/operation/",
        {"action": "stop_operations", "_selected_action": [operation.pk]},
    )

    assert response.status_code == 302
    assert Operation.objects.get(pk=operation.pk).state == OperationState.STOPPED


def test_modem_secret_kept_when_left_empty(admin_client):
    modem = make_operation().modem
    form = {
        "mac_address": modem.mac_address,
        "ip_address": "127.0.0.2",
        "snmp_port": modem.snmp_port,
        "snmp_version": "v2c",
        "community": "",
        "snmp_username": "",
        "auth_protocol": "",
        "auth_key": "",
        "priv_protocol": "",
        "priv_key": "",
    }

    response = admin_client.post(f"/admin/devices/cablemodem/{modem.pk}/change/", form)

    assert response.status_code == 302, response.content[:2000]
    modem.refresh_from_db()
    assert modem.ip_address == "127.0.0.2"
    assert modem.community == COMMUNITY
