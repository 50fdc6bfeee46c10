"""Starting an operation for a modem managed over IPv6: refused up front with a reason.

The TFTP receiver is IPv4-only and accepts an upload only from the modem's registered
address; an IPv6-managed modem uploads from an IPv4 address nobody registered, so its
captures could only fail later (see docs/architecture.md, "PNM links").
"""

from __future__ import annotations

import pytest

from captures.api.serializers import IPV6_REFUSED
from captures.models import Operation
from captures.tests.test_api import MODEMS, OPERATIONS, start_body
from devices.models import CableModem
from tests.factories import COMMUNITY, make_modem

pytestmark = pytest.mark.django_db
V2C = {"mac_address": "aa:bb:cc:dd:ee:01", "community": COMMUNITY}


@pytest.mark.parametrize("address", ["::1", "2001:db8::7", "fe80::1"])
def test_ipv6_modem_registers_but_cannot_start(operator_client, address):
    registered = operator_client.post(MODEMS, {**V2C, "ip_address": address}, format="json")
    assert registered.status_code == 201, registered.content

    response = operator_client.post(OPERATIONS, start_body(modem=V2C["mac_address"]), format="json")

    assert response.status_code == 400, response.content
    assert response.json() == {"modem": [str(IPV6_REFUSED)]}
    assert "IPv4-only" in str(IPV6_REFUSED)
    assert not Operation.objects.exists()


def test_registered_ipv6_modem_is_400_on_modem(operator_client):
    modem = make_modem(ip_address="2001:db8::7")

    response = operator_client.post(OPERATIONS, start_body(modem=modem.pk), format="json")

    assert response.status_code == 400, response.content
    assert response.json() == {"modem": [str(IPV6_REFUSED)]}
    assert not Operation.objects.exists()


def test_ipv4_mapped_address_is_the_ipv4_address(operator_client):
    """::ffff:a.b.c.d is an IPv4 modem: stored, expected and reached as a.b.c.d."""
    registered = operator_client.post(
        MODEMS, {**V2C, "ip_address": "::ffff:127.0.0.1"}, format="json"
    )
    assert registered.json()["ip_address"] == "127.0.0.1"

    response = operator_client.post(OPERATIONS, start_body(modem=V2C["mac_address"]), format="json")

    assert response.status_code == 201, response.content
    modem = CableModem.objects.get()
    assert modem.ip_address == "127.0.0.1"
    assert Operation.objects.get().modem == modem
