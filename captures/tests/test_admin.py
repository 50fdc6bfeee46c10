"""The admin pages of the PNM records: they render, stay read-only, never show secrets."""

from __future__ import annotations

import pytest

from captures.models import Operation, OperationState
from tests.factories import COMMUNITY, make_modem, make_operation, stored_transaction

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


def test_an_operator_starts_a_single_capture_from_the_modem_changelist(admin_client):
    modems = [make_modem(1), make_modem(2)]
    selected = {"action": "start_single_capture", "_selected_action": [m.pk for m in modems]}

    form = admin_client.post("/admin/devices/cablemodem/", selected)
    assert form.status_code == 200
    assert b"Start a single PNM capture" in form.content
    assert b'name="apply"' in form.content
    assert not Operation.objects.exists()

    refused = admin_client.post(
        "/admin/devices/cablemodem/",
        {**selected, "apply": "Start", "test": "DS_HISTOGRAM", "parameters": '{"timeout_s": 0}'},
    )
    assert refused.status_code == 200  # the form again, with the reason
    assert b"timeout_s" in refused.content
    assert b"must be from 1 to 65535" in refused.content
    assert not Operation.objects.exists()

    started = admin_client.post(
        "/admin/devices/cablemodem/",
        {**selected, "apply": "Start", "test": "DS_HISTOGRAM", "parameters": '{"timeout_s": 5}'},
        follow=True,
    )
    assert started.status_code == 200
    operations = Operation.objects.filter(name="single_capture").order_by("modem_id")
    assert [op.modem_id for op in operations] == [m.pk for m in modems]
    assert all(op.parameters == {"DS_HISTOGRAM": {"timeout_s": 5}} for op in operations)
    for operation in operations:
        assert operation.operation_id.encode() in started.content


def test_the_start_action_needs_the_add_operation_permission(client, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("looker", password="pw-12345678", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_cablemodem"))
    client.force_login(user)
    page = client.get("/admin/devices/cablemodem/")
    assert page.status_code == 200
    assert b"start_single_capture" not in page.content


def test_a_capture_page_shows_its_parsed_file_and_plot(admin_client):
    record = stored_transaction(make_operation())
    page = admin_client.get(f"/admin/captures/capture/{record.capture_id}/change/")
    assert page.status_code == 200
    assert (
        f"/api/v1/captures/transactions/{record.transaction_id}/plot.png".encode() in page.content
    )
    assert b"&quot;test_type&quot;: &quot;DS_OFDM_RXMER_PER_SUBCAR&quot;" in page.content
