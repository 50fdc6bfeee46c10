"""The capture settings are checked at start-up."""

import pytest
from django.test import override_settings

from captures.checks import tftp_destination_is_ipv4


@pytest.mark.parametrize("host", ["2001:db8::1", "::1", "tftp.example.net", ""])
def test_a_destination_that_is_not_ipv4_is_an_error(host):
    with override_settings(PNM_TFTP_DEST_HOST=host):
        errors = tftp_destination_is_ipv4(None)
    assert [error.id for error in errors] == ["captures.E001"]
    assert "PNM_TFTP_DEST_HOST" in errors[0].msg


def test_an_ipv4_destination_passes():
    with override_settings(PNM_TFTP_DEST_HOST="192.0.2.10"):
        assert tftp_destination_is_ipv4(None) == []
