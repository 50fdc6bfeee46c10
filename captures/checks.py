"""Start-up checks of the capture settings."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def tftp_destination_is_ipv4(app_configs, **kwargs) -> list[CheckMessage]:
    """Modems upload to PNM_TFTP_DEST_HOST, and the TFTP receiver (tftpy) speaks IPv4 only."""
    host = settings.PNM_TFTP_DEST_HOST
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return [
            Error(
                f"PNM_TFTP_DEST_HOST must be an IPv4 address modems can reach, got {host!r}",
                id="captures.E001",
            )
        ]
    if address.version != 4:
        return [
            Error(
                f"PNM_TFTP_DEST_HOST must be IPv4: the TFTP receiver listens on IPv4 only, "
                f"got {host}",
                id="captures.E001",
            )
        ]
    return []
