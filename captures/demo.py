"""Register simulated modems and start an operation on them (demo, benches)."""

from __future__ import annotations

from collections.abc import Sequence

from captures import services
from captures.models import MeasureMode, Operation, OperationName
from devices.models import CableModem
from simulators.modem import ModemFarm


def register_farm(farm: ModemFarm) -> list[CableModem]:
    """One registry row per simulated modem (found by MAC, address and port refreshed)."""
    return [
        CableModem.objects.update_or_create(
            mac_address=modem.mac,
            defaults={
                "ip_address": modem.address,
                "snmp_port": modem.port,
                "snmp_version": "v2c",
                "community": modem.community,
            },
        )[0]
        for modem in farm
    ]


def start_rxmer(
    modems: Sequence[CableModem],
    duration_s: int,
    interval_s: int,
    channel_ids: list[int] | None = None,
) -> list[Operation]:
    """A continuous multi-RxMER operation on each of ``modems``, started together (on
    ``channel_ids`` only, if given)."""
    return services.start_operations(
        [(modem, "") for modem in modems],
        name=OperationName.MULTI_RXMER,
        measure_mode=MeasureMode.CONTINUOUS,
        duration_s=duration_s,
        sample_interval_s=interval_s,
        channel_ids=channel_ids,
    )
