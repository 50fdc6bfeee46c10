"""Rows and files for tests that do not need the whole pipeline running."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings

from captures import services, staging
from captures.models import Capture, Operation, Transaction
from devices.links.pnm import PnmTest, stored_file_name
from devices.models import CableModem
from simulators.modem import SimulatedModem
from simulators.pnm_files import pnm_file

COMMUNITY = "s3cret-community"


def make_modem(index: int = 1, **fields) -> CableModem:
    defaults = {
        "mac_address": f"02:00:5e:00:01:{index:02x}",
        "ip_address": "127.0.0.1",
        "snmp_port": 16100 + index,
        "community": COMMUNITY,
    }
    return CableModem.objects.create(**{**defaults, **fields})


def make_operation(modem: CableModem | None = None, **options) -> Operation:
    options = {
        "name": "multi_rxmer",
        "measure_mode": "continuous",
        "duration_s": 60,
        "sample_interval_s": 10,
        **options,
    }
    return services.start_operation(modem=modem or make_modem(), **options)


def rxmer_capture(
    operation: Operation, tick: int, channel_id: int, name: str | Callable[[int], str]
) -> Capture | None:
    """The row of one RxMER file (``services.create_captures``; None if already made)."""
    names = name if callable(name) else lambda _offset: name
    made = services.create_captures(
        operation,
        tick,
        PnmTest.RXMER,
        channel_id,
        channel_id - 190,
        lambda _test, offset: names(offset),
        measure_s=30,
    )
    return made[0] if made else None


def uploaded_capture(
    operation: Operation, tick: int = 1, channel_id: int = 193, data: bytes | None = None
) -> tuple[Capture, bytes]:
    """A capture whose file sits complete in the spool, as the receiver leaves it."""
    mac = operation.modem.mac_address
    name = stored_file_name(PnmTest.RXMER, mac, channel_id, int(time.time()) + tick)
    capture = rxmer_capture(operation, tick, channel_id, name)
    if data is None:
        data = pnm_file(
            PnmTest.RXMER, channel_id=channel_id, mac=mac, capture_time=1_700_000_000, seed=tick
        )
    assert capture is not None  # a new (tick, channel)
    spool = settings.FIELDRELAY_SPOOL_DIR
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / name
    path.write_bytes(data)
    assert services.mark_uploaded({capture.pk: str(path)}) == {capture.pk}
    return capture, data


def stored_transaction(operation: Operation, tick: int = 1, channel_id: int = 193) -> Transaction:
    capture, _ = uploaded_capture(operation, tick, channel_id)
    [record] = staging.stage_captures([capture.pk])
    return record


def register_modem(modem: SimulatedModem, v3: bool = False) -> CableModem:
    """The registry row for a simulated modem, with the credentials it was given."""
    fields = {"ip_address": modem.address, "snmp_port": modem.port}
    if v3:
        user = modem.farm.v3_user
        fields.update(
            snmp_version="v3",
            snmp_username=user.user,
            auth_protocol=user.auth_protocol.lower(),
            auth_key=user.auth_key,
            priv_protocol=user.priv_protocol.lower(),
            priv_key=user.priv_key,
        )
    else:
        fields.update(snmp_version="v2c", community=modem.community)
    return CableModem.objects.create(mac_address=modem.mac, **fields)
