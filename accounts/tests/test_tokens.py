"""Scoped API tokens: hashed at rest, shown once, expiring, revocable, scope ∩ permissions."""

from __future__ import annotations

import importlib
import io
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, hash_key
from tests.helpers import role_user

pytestmark = pytest.mark.django_db
INSTRUMENTS = "/api/v1/monitoring/instruments/"
SAMPLES = "/api/v1/monitoring/samples"


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_key_is_stored_only_as_its_hash():
    token, key = ApiToken.objects.issue(role_user("v", "viewer"), "grafana", {"read"})
    assert len(key) >= 40
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert key not in [str(value) for value in row.values()]
    assert row["key_hash"] == hash_key(key)
    assert client_with(key).get(INSTRUMENTS).status_code == 200


def test_wrong_revoked_expired_or_inactive_is_401():
    user = role_user("v", "viewer")
    token, key = ApiToken.objects.issue(user, "t", {"read"})
    assert client_with(key[:8] + "x" * (len(key) - 8)).get(INSTRUMENTS).status_code == 401
    token.revoke()
    assert client_with(key).get(INSTRUMENTS).status_code == 401
    expiring, key = ApiToken.objects.issue(user, "e", {"read"}, timezone.now() + timedelta(hours=1))
    assert client_with(key).get(INSTRUMENTS).status_code == 200
    ApiToken.objects.filter(pk=expiring.pk).update(expires=timezone.now() - timedelta(seconds=1))
    assert client_with(key).get(INSTRUMENTS).status_code == 401
    _, key = ApiToken.objects.issue(user, "i", {"read"})
    user.is_active = False
    user.save()
    assert client_with(key).get(INSTRUMENTS).status_code == 401


def test_last_used_is_written_at_most_once_a_minute():
    token, key = ApiToken.objects.issue(role_user("v", "viewer"), "t", {"read"})
    client = client_with(key)
    client.get(INSTRUMENTS)
    first = ApiToken.objects.get(pk=token.pk).last_used
    assert first is not None
    client.get(INSTRUMENTS)
    assert ApiToken.objects.get(pk=token.pk).last_used == first
    ApiToken.objects.filter(pk=token.pk).update(last_used=first - timedelta(minutes=2))
    client.get(INSTRUMENTS)
    refreshed = ApiToken.objects.get(pk=token.pk).last_used
    assert refreshed is not None
    assert refreshed > first


def test_an_ingest_only_token_posts_samples_and_nothing_else():
    from monitoring.models import Instrument

    Instrument.objects.create(name="BPM01")
    _, key = ApiToken.objects.issue(role_user("i", "integrator"), "collector", {"ingest"})
    client = client_with(key)
    line = "BPM01 top_in=1,bot_in=2,bot_out=3,top_out=4 1764000000000000000"
    response = client.post(SAMPLES, line, content_type="text/plain")
    assert response.status_code == 201, response.content
    assert client.get(INSTRUMENTS).status_code == 403
    assert "lacks the 'read' scope" in client.get(INSTRUMENTS).json()["detail"]
    assert client.get("/api/schema/").status_code == 403


def test_scope_does_not_widen_a_users_permissions():
    _, key = ApiToken.objects.issue(role_user("v", "viewer"), "all", {"read", "operate", "ingest"})
    assert client_with(key).post(SAMPLES, [], format="json").status_code == 403
    assert client_with(key).post("/api/v1/devices/modems/", {}).status_code == 403


def test_create_token_command_prints_the_key_once():
    role_user("integration", "integrator")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_token",
        "integration",
        "--name=ci",
        "--scopes=read,operate",
        "--expires=30d",
        stdout=out,
        stderr=err,
    )
    key = out.getvalue().strip()
    token = ApiToken.objects.get(name="ci")
    assert token.scopes == {"read", "operate"}
    assert token.expires is not None
    assert timedelta(days=29) < token.expires - timezone.now() <= timedelta(days=30)
    assert key not in err.getvalue()
    assert client_with(key).get("/api/v1/devices/modems/").status_code == 200
    with pytest.raises(CommandError, match="already has a token"):
        call_command("create_token", "integration", "--name=ci", stdout=out)
    with pytest.raises(CommandError, match="--scopes"):
        call_command("create_token", "integration", "--name=x", "--scopes=root", stdout=out)
    with pytest.raises(CommandError, match="--expires"):
        call_command("create_token", "integration", "--name=y", "--expires=soon", stdout=out)


def test_admin_shows_the_key_once_and_revokes(admin_client, django_user_model):
    user = role_user("integration", "integrator")
    response = admin_client.post(
        "/admin/accounts/apitoken/add/", {"user": user.pk, "name": "grafana", "scope_read": "on"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = response.context["key"]
    assert key in response.content.decode()
    assert key not in str(response.cookies)
    token = ApiToken.objects.get(name="grafana")
    assert token.key_hash == hash_key(key)
    assert client_with(key).get(INSTRUMENTS).status_code == 200
    change = admin_client.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()
    listing = admin_client.get("/admin/accounts/apitoken/").content.decode()
    assert key not in change
    assert key not in listing
    assert token.key_hash not in change
    admin_client.post(
        "/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert ApiToken.objects.get(pk=token.pk).revoked is not None
    assert client_with(key).get(INSTRUMENTS).status_code == 401


def test_demo_setup_prints_a_working_token_each_run():
    keys = []
    for _ in range(2):
        out = io.StringIO()
        call_command("demo_setup", stdout=out)
        line = next(x for x in out.getvalue().splitlines() if "API token" in x)
        keys.append(line.split(":", 1)[1].split()[0])
    assert keys[0] != keys[1]
    assert client_with(keys[0]).get(INSTRUMENTS).status_code == 401  # replaced
    assert client_with(keys[1]).get(INSTRUMENTS).status_code == 200


def test_drf_authtoken_keys_are_migrated_and_their_table_dropped():
    migration = importlib.import_module("accounts.migrations.0002_hash_drf_tokens")
    user = role_user("old-client", "viewer")
    old_key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id int)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s)", [old_key, user.pk])
    with connection.schema_editor() as editor:
        migration.hash_old_tokens(apps, editor)
    assert "authtoken_token" not in connection.introspection.table_names()
    assert ApiToken.objects.get(user=user).scopes == {"read", "operate", "ingest"}
    assert client_with(old_key).get(INSTRUMENTS).status_code == 200
