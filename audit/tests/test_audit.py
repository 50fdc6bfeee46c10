"""The audit trail: every state-changing API and admin call leaves an append-only row
that names who, what, from where and the outcome, and outlives its object."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from rest_framework.test import APIClient

from accounts.models import ApiToken, Scope
from audit.models import AppendOnlyError, AuditEvent, Outcome
from captures.models import Operation
from monitoring.models import Instrument
from seismographs.models import Seismograph
from tests.factories import COMMUNITY
from tests.helpers import role_user

pytestmark = pytest.mark.django_db
SEISMOGRAPHS = "/api/v1/devices/seismographs/"
EVENTS = "/api/v1/audit/events/"


def token_client(user, address: str = "192.0.2.10", **extra: Any) -> APIClient:
    client = APIClient(REMOTE_ADDR=address, **extra)
    _, key = ApiToken.objects.issue(user, f"audit-test-{uuid.uuid4().hex[:8]}", set(Scope.values))
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def staff():
    return role_user("ops-lead", "admin", is_staff=True)


@pytest.fixture
def viewer():
    return get_user_model().objects.create_user("viewer")


def test_create_and_delete_are_recorded_and_survive_the_object(staff):
    client = token_client(staff)
    created = client.post(SEISMOGRAPHS, {"conn_key": "tcp:127.0.0.1:9", "name": "north"})
    assert created.status_code == 201
    unit_id = created.json()["id"]
    assert client.delete(f"{SEISMOGRAPHS}{unit_id}/").status_code == 204
    assert not Seismograph.objects.filter(pk=unit_id).exists()

    create, delete = AuditEvent.objects.order_by("id")
    assert (create.action, delete.action) == ("seismograph.create", "seismograph.destroy")
    for event in (create, delete):
        assert (event.actor, event.actor_id) == ("ops-lead", staff.pk)
        assert event.address == "192.0.2.10"
        assert event.outcome == Outcome.SUCCESS
        assert (event.object_type, event.object_id) == ("seismographs.seismograph", str(unit_id))
        assert "tcp:127.0.0.1:9" in event.object_repr or "north" in event.object_repr
    assert (create.status_code, delete.status_code) == (201, 204)
    assert create.detail["fields"] == ["conn_key", "name"]


def test_refused_and_failed_calls_are_recorded_with_their_outcome(viewer, staff):
    unit = Seismograph.objects.create(conn_key="tcp:127.0.0.1:9")
    assert token_client(viewer).post(f"{SEISMOGRAPHS}{unit.pk}/erase/").status_code == 403
    assert token_client(staff).post(SEISMOGRAPHS, {"conn_key": "nonsense"}).status_code == 400
    denied, failed = AuditEvent.objects.order_by("id")
    assert (denied.action, denied.outcome, denied.status_code) == (
        "seismograph.erase",
        Outcome.DENIED,
        403,
    )
    assert denied.object_id == str(unit.pk)
    assert (failed.outcome, failed.detail["refused"]) == (Outcome.ERROR, ["conn_key"])


def test_names_sent_are_recorded_cleaned(staff):
    response = token_client(staff).post(SEISMOGRAPHS, {"conn\u0000_key": 1, "x" * 99: 2})
    assert response.status_code == 400
    assert AuditEvent.objects.get().detail["fields"] == ["conn_key", "x" * 64]


def test_reads_and_anonymous_calls_leave_no_row(viewer):
    token_client(viewer).get(SEISMOGRAPHS)
    APIClient().post(SEISMOGRAPHS, {"conn_key": "tcp:127.0.0.1:9"})
    assert not AuditEvent.objects.exists()


def test_secrets_sent_are_never_recorded(staff):
    client = token_client(staff)
    modem = {"mac_address": "aa:bb:cc:dd:ee:77", "ip_address": "127.0.0.1"}
    registered = client.post("/api/v1/devices/modems/", {**modem, "community": COMMUNITY})
    assert registered.status_code == 201, registered.content
    body = {
        "modem": modem["mac_address"],
        "test": "multi_rxmer",
        "duration_s": 60,
        "sample_interval_s": 10,
    }
    response = client.post("/api/v1/captures/operations/", body, format="json")
    assert response.status_code == 201
    register, event = AuditEvent.objects.order_by("id")
    assert register.action == "modem.create"
    assert COMMUNITY not in str(AuditEvent.objects.values().get(pk=register.pk))
    assert event.action == "operation.create"
    assert event.object_type == "captures.operation"
    operation = Operation.objects.get(operation_id=response.json()["operation_id"])
    assert (event.object_id, event.object_repr) == (str(operation.pk), str(operation))
    row = str(AuditEvent.objects.values().get(pk=event.pk))
    assert COMMUNITY not in row


def test_forwarded_for_counts_only_from_a_trusted_proxy(staff, settings):
    unit = Seismograph.objects.create(conn_key="tcp:127.0.0.1:9")
    spoofed = token_client(staff, "198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.5")
    spoofed.post(f"{SEISMOGRAPHS}{unit.pk}/monitor/stop/")
    settings.AUDIT_TRUSTED_PROXIES = ["10.0.0.2"]
    proxied = token_client(staff, "10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.5, 10.0.0.2")
    proxied.post(f"{SEISMOGRAPHS}{unit.pk}/monitor/stop/")
    assert list(AuditEvent.objects.order_by("id").values_list("address", flat=True)) == [
        "198.51.100.7",
        "203.0.113.5",
    ]


def test_rows_are_append_only(staff):
    event = AuditEvent.objects.create(action="x.y", outcome=Outcome.SUCCESS)
    event.action = "changed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.update(action="changed")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_auditevent SET action = 'changed'", "DELETE FROM audit_auditevent"],
)
def test_the_database_refuses_changes_too(sql):
    AuditEvent.objects.create(action="x.y", outcome=Outcome.SUCCESS)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert AuditEvent.objects.get().action == "x.y"


def test_admin_changes_and_bulk_deletes_are_recorded(admin_client, admin_user):
    first, second = (Instrument.objects.create(name=n, kind="other", channels=["t"]) for n in "ab")
    url = f"/admin/monitoring/instrument/{first.pk}/change/"
    response = admin_client.post(url, {"name": "a", "active": ""})
    assert response.status_code == 302
    response = admin_client.post(
        "/admin/monitoring/instrument/",
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Instrument.objects.exists()
    change, *deletions = AuditEvent.objects.order_by("id")
    assert (change.action, change.object_type, change.actor) == (
        "admin.change",
        "monitoring.instrument",
        admin_user.username,
    )
    assert change.detail["fields"] == ["Active"]
    assert sorted((e.action, e.object_repr) for e in deletions) == [
        ("admin.deletion", "a"),
        ("admin.deletion", "b"),
    ]


def test_the_api_filters_events_for_staff_only(staff, viewer):
    unit = Seismograph.objects.create(conn_key="tcp:127.0.0.1:9")
    token_client(viewer).post(f"{SEISMOGRAPHS}{unit.pk}/erase/")
    token_client(staff).post(f"{SEISMOGRAPHS}{unit.pk}/monitor/start/")
    client = token_client(staff)
    assert token_client(viewer).get(EVENTS).status_code == 403

    def actions(**query: str) -> list[str]:
        response = client.get(EVENTS, query)
        assert response.status_code == 200, response.content
        return [row["action"] for row in response.json()["results"]]

    assert actions(actor="viewer") == ["seismograph.erase"]
    assert actions(actor=str(staff.pk)) == ["seismograph.monitor_start"]
    assert actions(outcome="denied") == ["seismograph.erase"]
    assert actions(action="seismograph.monitor_start", outcome="success") == [
        "seismograph.monitor_start"
    ]
    earliest = AuditEvent.objects.order_by("at").first()
    assert earliest is not None
    first = earliest.at.isoformat()
    assert len(actions(since=first)) == 2
    assert actions(until=first) == []
    assert client.get(EVENTS, {"since": "yesterday"}).status_code == 400
    # Offsets PostgreSQL cannot take, times UTC cannot hold: compared in UTC, clamped.
    assert len(actions(since="2000-01-01T00:00:00+19:03")) == 2
    assert len(actions(since="0001-01-01T00:00:00+05:00")) == 2
    assert actions(until="0001-01-01T00:00:00+05:00") == []
    assert len(actions(until="9999-12-31T23:00:00-05:00")) == 2
    # Reading the trail is not itself a change: still two rows.
    assert AuditEvent.objects.count() == 2
