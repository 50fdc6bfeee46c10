"""The modem registry API: CRUD, filters, and credentials that never come back out.

The sweep requests every GET route of the API (enumerated from the URLconf, with real ids)
after secrets were set through the API, and also looks at the admin, the exported
manifests and every log record written meanwhile.
"""

from __future__ import annotations

import logging
import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from audit.models import AuditEvent
from captures.pypnm_export import export
from devices.models import CableModem
from monitoring.models import Instrument
from tests.factories import make_operation, stored_transaction
from tests.helpers import role_user, token_client

pytestmark = pytest.mark.django_db
MODEMS = "/api/v1/devices/modems/"
COMMUNITY = "sweep-community-7f3a"
AUTH_KEY = "sweep-auth-key-19c2"
PRIV_KEY = "sweep-priv-key-8d41"
SECRETS = (COMMUNITY, AUTH_KEY, PRIV_KEY)
V2C = {"mac_address": "02-00-5E-00-07-01", "ip_address": "127.0.0.1", "community": COMMUNITY}
V3 = {
    "mac_address": "0200.5e00.0702",
    "ip_address": "127.0.0.2",
    "snmp_version": "v3",
    "snmp_username": "pnm-user",
    "auth_protocol": "sha",
    "auth_key": AUTH_KEY,
    "priv_protocol": "aes",
    "priv_key": PRIV_KEY,
}


@pytest.fixture
def operator():
    return token_client(role_user("op", "operator"))


def test_create_normalizes_and_never_returns_secrets(operator):
    made = operator.post(MODEMS, {**V2C, "tag": "lab", "cmts": "cmts-north"}, format="json")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["mac_address"] == "02:00:5e:00:07:01"
    assert body["secrets_set"] == ["community"]
    assert (body["tag"], body["cmts"]) == ("lab", "cmts-north")
    assert "community" not in body
    v3 = operator.post(MODEMS, V3, format="json").json()
    assert v3["secrets_set"] == ["auth_key", "priv_key"]
    assert v3["snmp_username"] == "pnm-user"
    stored = CableModem.objects.get(pk=v3["id"])
    assert (stored.auth_key, stored.priv_key, stored.community) == (AUTH_KEY, PRIV_KEY, "")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**V2C, "community": ""}, "community"),
        ({**V3, "snmp_username": ""}, "snmp_username"),
        ({**V3, "auth_key": "short1"}, "auth_key"),
        ({**V2C, "mac_address": "02:00:5e"}, "mac_address"),
        ({**V2C, "ip_address": "300.1.1.1"}, "ip_address"),
        ({**V2C, "snmp_port": 0}, "snmp_port"),
    ],
)
def test_bad_create_is_400_naming_the_field_without_echoing_secrets(operator, body, field):
    response = operator.post(MODEMS, body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    for secret in (*SECRETS, "short1"):
        assert secret not in response.content.decode()
    assert not CableModem.objects.exists()


def test_duplicate_mac_in_another_spelling_is_400(operator):
    assert operator.post(MODEMS, V2C, format="json").status_code == 201
    again = operator.post(MODEMS, {**V2C, "mac_address": "02:00:5e:00:07:01"}, format="json")
    assert again.status_code == 400
    assert "mac_address" in again.json()


def test_update_keeps_omitted_or_empty_secrets_and_switching_version_drops_them(operator):
    modem = operator.post(MODEMS, V2C, format="json").json()
    url = f"{MODEMS}{modem['id']}/"
    patched = operator.patch(url, {"ip_address": "127.0.0.9", "community": ""}, format="json")
    assert patched.status_code == 200, patched.content
    assert CableModem.objects.get().community == COMMUNITY
    assert CableModem.objects.get().ip_address == "127.0.0.9"
    put = operator.put(url, {**V3, "mac_address": V2C["mac_address"]}, format="json")
    assert put.status_code == 200, put.content
    stored = CableModem.objects.get()
    assert (stored.snmp_version, stored.community, stored.auth_key) == ("v3", "", AUTH_KEY)
    assert put.json()["secrets_set"] == ["auth_key", "priv_key"]


def test_delete_refuses_a_modem_with_operations(operator):
    busy = make_operation()
    assert operator.delete(f"{MODEMS}{busy.modem.pk}/").status_code == 409
    spare = operator.post(MODEMS, V2C, format="json").json()
    assert operator.delete(f"{MODEMS}{spare['id']}/").status_code == 204
    assert list(CableModem.objects.all()) == [busy.modem]


def test_filters(operator):
    operator.post(MODEMS, {**V2C, "tag": "lab", "cmts": "cmts-a"}, format="json")
    operator.post(MODEMS, {**V3, "cmts": "cmts-b"}, format="json")
    CableModem.objects.filter(mac_address="02:00:5e:00:07:02").update(
        vendor="Technicolor", model="TC4400"
    )

    def macs(**params) -> list[str]:
        response = operator.get(MODEMS, params)
        assert response.status_code == 200, response.content
        return [m["mac_address"] for m in response.json()["results"]]

    assert macs() == ["02:00:5e:00:07:01", "02:00:5e:00:07:02"]
    assert macs(mac="02005E000701") == ["02:00:5e:00:07:01"]
    assert macs(ip="127.0.0.2") == ["02:00:5e:00:07:02"]
    assert macs(vendor="technic") == ["02:00:5e:00:07:02"]
    assert macs(model="tc44") == ["02:00:5e:00:07:02"]
    assert macs(tag="lab") == ["02:00:5e:00:07:01"]
    assert macs(cmts="cmts-b") == ["02:00:5e:00:07:02"]
    assert macs(snmp_version="v2c") == ["02:00:5e:00:07:01"]
    for bad in ({"mac": "nope"}, {"ip": "10.0.0"}, {"snmp_version": "v1"}):
        assert operator.get(MODEMS, bad).status_code == 400, bad


def _get_routes():
    def walk(patterns, prefix=""):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield prefix + str(entry.pattern), entry

    for route, pattern in walk(get_resolver().url_patterns):
        if not route.startswith("api/"):
            continue
        actions = getattr(pattern.callback, "actions", None)
        if "get" in actions if actions else hasattr(pattern.callback.cls, "get"):
            yield route, pattern.name


def _path(route: str, name: str, ids: dict[str, object]) -> str:
    """The route with real ids filled in (the modem's, the operation's, ...)."""
    path = route.replace("^", "").replace("$", "").replace("/?", "/").replace("\\.", ".")

    def value(match: re.Match) -> str:
        group = match.group(1)
        if group == "pk":
            return str(ids[name.split("-")[0]])
        return str(ids.get(group, 1))

    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", value, path)
    path = re.sub(r"<(?:\w+:)?(\w+)>", value, path)
    return "/" + path


def test_secrets_appear_in_no_get_response_admin_page_export_or_log(
    operator, admin_client, caplog, tmp_path
):
    caplog.set_level(logging.DEBUG)
    v2c = operator.post(MODEMS, V2C, format="json").json()
    v3 = operator.post(MODEMS, V3, format="json").json()
    operator.post(MODEMS, {**V3, "auth_key": "tiny"}, format="json")  # an error path too
    operation = make_operation(CableModem.objects.get(pk=v3["id"]))
    record = stored_transaction(operation)
    ids = {
        "modem": v2c["id"],
        "operation_id": operation.operation_id,
        "transaction_id": record.transaction_id,
        # No unit: its reads would dial it (they hold no modem data anyway).
        "seismograph": 999999,
        "monitoring": Instrument.objects.create(name="BPM-S").pk,
        "audit": AuditEvent.objects.latest("id").pk,  # the trail of the calls above
    }
    viewer = token_client(role_user("viewer", "viewer"))
    admin = token_client(role_user("admin-sweep", "admin"))
    outputs: dict[str, bytes] = {}
    for route, name in _get_routes():
        path = _path(route, name, ids)
        for client in (operator, viewer, admin):
            response = client.get(path)
            assert response.status_code < 500, (path, response.status_code)
            content = (
                b"".join(getattr(response, "streaming_content", []))
                if response.streaming
                else response.content
            )
            outputs[path] = outputs.get(path, b"") + content
    assert len(outputs) >= 25
    assert b"02:00:5e:00:07:01" in outputs[f"{MODEMS}{v2c['id']}/"]  # the sweep saw the modem
    view_only = Client()
    view_only.force_login(role_user("view-staff", "viewer", is_staff=True))
    for page in ("/admin/devices/cablemodem/", f"/admin/devices/cablemodem/{v3['id']}/change/"):
        for who, browser in (("admin", admin_client), ("viewer", view_only)):
            response = browser.get(page)
            assert response.status_code == 200, (who, page)
            outputs[f"{who} {page}"] = response.content
    viewer_page = outputs[f"viewer /admin/devices/cablemodem/{v3['id']}/change/"]
    assert b"pnm-user" in viewer_page
    assert b"auth_key, priv_key" in viewer_page  # named, not shown
    export(tmp_path, with_files=False)
    for path in tmp_path.iterdir():
        outputs[str(path)] = path.read_bytes()
    for where, content in outputs.items():
        for secret in SECRETS:
            assert secret.encode() not in content, (secret, where)
    for secret in SECRETS:
        assert secret not in caplog.text
