"""The modem farm at campaign scale: cached MIB layouts, delay ranges, start-up, open files."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command

from devices.links import pnm
from devices.links.pnm import CtlStatus, PnmTest
from devices.links.snmp import SnmpClient, client
from simulators.modem import BULK_FILE_TABLE, ModemFarm, parse_delay
from simulators.pnm_files import snmp_spectrum_rows
from tests.helpers import ROOT, wait_until

DELAY = (0.2, 0.6)


@pytest.fixture(scope="module")
def farm() -> Iterator[ModemFarm]:
    with ModemFarm(2, measure_delay_s=DELAY, seed=11) as running:
        yield running


@pytest.fixture(scope="module")
def snmp() -> SnmpClient:
    return client()


def walk(snmp: SnmpClient, farm: ModemFarm, oid: str = "1.3.6") -> dict[str, Any]:
    return dict(snmp.walk(farm[0].target(), oid))


def test_walks_follow_mib_changes(farm: ModemFarm, snmp: SnmpClient) -> None:
    """The layout a walk reads is cached: a change of the MIB's objects (a sweep, a bulk-file
    row) shows in the next walk, and undoing it gives the first walk back."""
    modem = farm[0]
    target = modem.target()
    before = walk(snmp, farm)
    assert len(before) == 77
    assert walk(snmp, farm, pnm.SPECTRUM_AMPLITUDE_DATA) == {}

    enable = PnmTest.SPECTRUM_ANALYZER.spec.column(pnm.SPECTRUM_ENABLE_COLUMN, 0)
    snmp.set(target, (enable, pnm.TRUE))
    sweep = snmp_spectrum_rows(farm.call(modem.tests[(PnmTest.SPECTRUM_ANALYZER, 0)].parameters))
    spectrum = {f"{pnm.SPECTRUM_AMPLITUDE_DATA}.{centre}": data for centre, data in sweep}
    assert walk(snmp, farm, pnm.SPECTRUM_AMPLITUDE_DATA) == spectrum
    assert walk(snmp, farm) == {**before, enable: pnm.TRUE, **spectrum}

    snmp.set(target, (enable, pnm.FALSE))
    assert walk(snmp, farm) == before

    started = time.monotonic()
    pnm.start_capture(snmp, target, PnmTest.RXMER, 3, "rxmer.bin")
    wait_until(lambda: pnm.ctl_status(snmp, target) is CtlStatus.READY)
    assert time.monotonic() - started >= modem.measurement_delay(modem.triggers)
    after = walk(snmp, farm)
    bulk = {f"{BULK_FILE_TABLE}.1.1": 1, f"{BULK_FILE_TABLE}.2.1": b"rxmer.bin"}
    assert walk(snmp, farm, BULK_FILE_TABLE) == {**bulk, f"{BULK_FILE_TABLE}.4.1": 3}
    assert sorted(after) == sorted([*before, *bulk, f"{BULK_FILE_TABLE}.4.1"])
    assert after[PnmTest.RXMER.meas_status_oid(3)] == int(pnm.MeasStatus.SAMPLE_READY)
    assert walk(snmp, farm, pnm.OFDM_CHANNEL_ID) == {
        f"{pnm.OFDM_CHANNEL_ID}.3": 193,
        f"{pnm.OFDM_CHANNEL_ID}.4": 194,
    }


def test_delay_range_is_respected_and_repeatable_with_a_seed() -> None:
    def draws(seed: int | None, order: slice = slice(None)) -> list[float]:
        farm = ModemFarm(3, measure_delay_s=(0.5, 2.0), seed=seed)
        try:
            return [m.measurement_delay(n) for m in farm.modems[order] for n in range(1, 201)]
        finally:
            farm.stop()
            farm.loop.close()

    seeded = draws(7)
    assert all(0.5 <= delay <= 2.0 for delay in seeded)
    assert min(seeded) < 0.6
    assert max(seeded) > 1.9
    assert abs(sum(seeded) / len(seeded) - 1.25) < 0.1
    assert draws(7) == seeded
    assert sorted(draws(7, slice(None, None, -1))) == sorted(seeded)  # whatever the order
    assert draws(8) != seeded
    assert draws(None) != draws(None)


def test_a_fixed_delay_still_works_and_bad_delays_are_refused() -> None:
    farm = ModemFarm(1, measure_delay_s=0.7)
    try:
        assert {farm[0].measurement_delay(n) for n in range(1, 50)} == {0.7}
    finally:
        farm.stop()
        farm.loop.close()
    for bad in ((2.0, 1.0), (-0.1, 1.0), -1.0):
        with pytest.raises(ValueError, match="measure_delay_s"):
            ModemFarm(1, measure_delay_s=bad)
    assert parse_delay("1.5") == 1.5
    assert parse_delay("0.5,2") == (0.5, 2.0)
    with pytest.raises(ValueError, match="measure_delay_s"):
        parse_delay("2,1")


def test_a_farm_of_2000_distinct_address_modems_starts_and_answers(snmp: SnmpClient) -> None:
    started = time.monotonic()
    with ModemFarm(2000, distinct_addresses=True) as farm:
        assert time.monotonic() - started < 15  # 0.3 s here; an O(n^2) start would not be
        assert len({m.address for m in farm}) == 2000
        assert farm[-1].address == "127.0.8.250"
        for modem in (farm[0], farm[-1]):
            target = modem.target(timeout_s=2, retries=1)
            (descr,) = snmp.get(target, pnm.SYS_DESCR)
            assert isinstance(descr, bytes)
            assert descr.startswith(b"DOCSIS 3.1")
            assert len(snmp.walk(target, pnm.OFDM_CHANNEL_ID)) == 2
        assert not any(m.tests for m in farm)  # rows are made on first use, not at start


FD_SCRIPT = """
import resource
from simulators.modem import ModemFarm
resource.setrlimit(resource.RLIMIT_NOFILE, (150, 1000))
with ModemFarm(200, distinct_addresses=True) as farm:
    print("started", resource.getrlimit(resource.RLIMIT_NOFILE)[0], farm.open_files_needed)
try:
    ModemFarm(800).start()
except RuntimeError as exc:
    print(exc)
"""


def test_open_files_limit_is_raised_or_the_farm_refuses_to_start() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FD_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    started, refused = result.stdout.splitlines()
    assert started == "started 488 488"  # 200 sockets + 2 x 16 upload workers + 256
    assert refused == "800 modems need 1088 open files; the limit is 1000 (ulimit -n)"


def test_simulate_modems_passes_the_delay_range_seed_and_upload_knobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    class Started(Exception):
        pass

    class Farm:
        def __init__(self, count: int, **options: Any) -> None:
            seen.update(options, count=count)

        def start(self) -> None:
            raise Started

    monkeypatch.setattr("devices.management.commands.simulate_modems.ModemFarm", Farm)
    with pytest.raises(Started):
        call_command(
            "simulate_modems",
            "--count=10000",
            "--delay=0.5,2",
            "--seed=42",
            "--upload-workers=64",
            "--upload-timeout=3",
        )
    assert seen["count"] == 10000
    assert seen["measure_delay_s"] == (0.5, 2.0)
    assert seen["seed"] == 42
    assert seen["upload_workers"] == 64
    assert seen["upload_timeout_s"] == 3.0
