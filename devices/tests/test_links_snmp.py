"""The SNMP adapter against simulated modems over real UDP: v2c, v3, errors and timeouts."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from devices.links import pnm
from devices.links import snmp as snmp_module
from devices.links.snmp import (
    SnmpClient,
    SnmpRejected,
    SnmpTarget,
    SnmpTimeout,
    client,
    is_ipv6,
    values_by_suffix,
)
from simulators.modem import Failure, ModemFarm, V3User

OK, SILENT, WRONG_COMMUNITY = 0, 1, 2


@pytest.fixture(scope="module")
def farm() -> Iterator[ModemFarm]:
    with ModemFarm(
        3,
        measure_delay_s=0.2,
        failures={SILENT: Failure.TIMEOUT, WRONG_COMMUNITY: Failure.WRONG_COMMUNITY},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def snmp() -> Iterator[SnmpClient]:
    one = SnmpClient()
    yield one
    one.close()


def fast(target: SnmpTarget) -> SnmpTarget:
    return replace(target, timeout_s=0.3, retries=1)


def test_get_returns_plain_python_values(farm: ModemFarm, snmp: SnmpClient) -> None:
    descr, status, missing = snmp.get(
        farm[OK].target(), pnm.SYS_DESCR, pnm.CTL_STATUS, "1.3.6.1.2.1.1.99.0"
    )
    assert isinstance(descr, bytes)
    assert descr.startswith(b"DOCSIS 3.1 Cable Modem <<HW_REV")
    assert status == pnm.CtlStatus.READY
    assert missing is None


def test_walk_returns_the_rows_under_an_oid(farm: ModemFarm, snmp: SnmpClient) -> None:
    rows = snmp.walk(farm[OK].target(), pnm.OFDM_CHANNEL_ID)
    assert values_by_suffix(rows, pnm.OFDM_CHANNEL_ID) == {3: 193, 4: 194}
    assert snmp.walk(farm[OK].target(), "1.3.6.1.2.1.99") == []


def test_set_changes_the_agent_and_echoes(farm: ModemFarm, snmp: SnmpClient) -> None:
    target = farm[OK].target()
    assert snmp.set(target, (pnm.BULK_DEST_PATH, b"/pnm/")) == [b"/pnm/"]
    assert snmp.get(target, pnm.BULK_DEST_PATH) == [b"/pnm/"]
    assert farm[OK].dest_path == b"/pnm/"


def test_set_of_a_wrong_type_is_rejected_with_its_status(farm: ModemFarm, snmp: SnmpClient) -> None:
    with pytest.raises(SnmpRejected) as rejected:
        snmp.set(farm[OK].target(), (pnm.BULK_DEST_PATH, 5))
    assert rejected.value.status == "wrongType"
    assert rejected.value.oid == pnm.BULK_DEST_PATH


def test_read_only_community_cannot_set(farm: ModemFarm, snmp: SnmpClient) -> None:
    read_only = farm[OK].target(community=farm.read_community)
    assert snmp.get(read_only, pnm.CTL_STATUS) == [pnm.CtlStatus.READY]
    with pytest.raises(SnmpRejected) as rejected:
        snmp.set(read_only, (pnm.BULK_DEST_PATH, b"/nope/"))
    assert rejected.value.status in {"noAccess", "authorizationError", "notWritable"}
    assert farm[OK].dest_path != b"/nope/"


def test_v3_with_authentication_works(farm: ModemFarm, snmp: SnmpClient) -> None:
    target = farm[OK].v3_target()
    assert snmp.get(target, pnm.CTL_STATUS) == [pnm.CtlStatus.READY]
    assert snmp.set(target, (pnm.BULK_DEST_PATH, b"/v3/")) == [b"/v3/"]


def test_v3_with_a_wrong_key_is_rejected(farm: ModemFarm, snmp: SnmpClient) -> None:
    target = replace(farm[OK].v3_target(), auth_key="not-the-right-key")
    with pytest.raises(SnmpRejected, match="digest"):
        snmp.get(fast(target), pnm.SYS_DESCR)


def test_v3_unknown_user_is_rejected(farm: ModemFarm, snmp: SnmpClient) -> None:
    target = replace(farm[OK].v3_target(), user="intruder")
    with pytest.raises(SnmpRejected):
        snmp.get(fast(target), pnm.SYS_DESCR)


def test_wrong_community_looks_like_a_timeout(farm: ModemFarm, snmp: SnmpClient) -> None:
    """v2c agents drop requests with an unknown community: the manager can only time out."""
    modem = farm[WRONG_COMMUNITY]
    with pytest.raises(SnmpTimeout):
        snmp.get(fast(modem.target()), pnm.SYS_DESCR)
    assert snmp.get(modem.target(community=modem.actual_community), pnm.CTL_STATUS) == [2]


def test_silent_agent_times_out_within_the_budget(farm: ModemFarm, snmp: SnmpClient) -> None:
    target = fast(farm[SILENT].target())
    started = time.monotonic()
    with pytest.raises(SnmpTimeout):
        snmp.get(target, pnm.SYS_DESCR)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed <= target.budget_s + 0.5


def test_one_engine_serves_every_v3_call_until_closed(farm: ModemFarm) -> None:
    own = SnmpClient()
    own.get(farm[OK].v3_target(), pnm.CTL_STATUS)
    engine = own._engine
    assert engine is not None
    own.walk(farm[OK].v3_target(), pnm.OFDM_CHANNEL_ID)
    assert own._engine is engine
    own.close()
    assert own.get(farm[OK].v3_target(), pnm.CTL_STATUS) == [2]  # a fresh engine after close
    assert own._engine is not engine
    own.close()


def test_v2c_never_builds_the_engine(farm: ModemFarm) -> None:
    """v2c goes over the wire module: a process that speaks only v2c keeps no engine (and
    none of its per-address rows)."""
    own = SnmpClient()
    try:
        assert own.get(farm[OK].target(), pnm.CTL_STATUS) == [2]
        assert own.walk(farm[OK].target(), pnm.OFDM_CHANNEL_ID)
        assert own.set(farm[OK].target(), (pnm.BULK_DEST_PATH, b"/w/")) == [b"/w/"]
        assert own._engine is None
        assert own._wire is not None
    finally:
        own.close()


def test_v2c_walk_matches_the_engine_walk_over_many_pages(
    farm: ModemFarm, snmp: SnmpClient
) -> None:
    """Our GETBULK walk against pysnmp's own (over v3, through the engine): the same rows,
    across page boundaries (the whole modem MIB is several pages of 25)."""
    modem = farm[OK]
    ours = snmp.walk(modem.target(), "1.3.6.1")
    theirs = snmp.walk(modem.v3_target(), "1.3.6.1")
    assert len(ours) > 3 * snmp_module.WALK_REPETITIONS
    assert ours == theirs
    assert snmp.walk(modem.target(), "1.3.6.1", max_rows=30) == theirs[:30]


def _child_get(snmp: SnmpClient, target: SnmpTarget, results: Any) -> None:
    results.put(snmp.get(target, pnm.CTL_STATUS))


def test_forked_child_builds_its_own_engine(farm: ModemFarm, snmp: SnmpClient) -> None:
    """Celery's prefork children inherit the parent's client: each must make its own loop."""
    target = farm[OK].target()
    snmp.get(target, pnm.CTL_STATUS)  # the parent's engine and loop exist
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    child = fork.Process(target=_child_get, args=(snmp, target, results))
    child.start()
    child.join(20)
    assert child.exitcode == 0
    assert results.get(timeout=5) == [pnm.CtlStatus.READY]
    assert snmp.get(target, pnm.CTL_STATUS) == [pnm.CtlStatus.READY]  # parent unharmed


def test_client_accessor_is_one_per_process() -> None:
    assert client() is client()


def test_target_repr_never_shows_secrets() -> None:
    target = SnmpTarget(
        "10.0.0.1",
        community="s3cret-community",
        version="3",
        user="u",
        auth_key="s3cret-auth",
        priv_key="s3cret-priv",
    )
    assert "s3cret" not in repr(target)
    assert "s3cret" not in str(target)


def test_target_validates_its_protocols() -> None:
    with pytest.raises(ValueError, match="version"):
        SnmpTarget("10.0.0.1", version="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="auth protocol"):
        SnmpTarget("10.0.0.1", auth_protocol="ROT13")


def test_v3_with_privacy_encrypts_and_works(snmp: SnmpClient) -> None:
    """authPriv (SHA + AES): needs the cryptography package, a project dependency."""
    user = V3User(priv_key="pnm-priv-key", priv_protocol="AES")
    with ModemFarm(1, v3_user=user) as private:
        target = private[0].v3_target()
        assert target.priv_key
        assert snmp.get(target, pnm.CTL_STATUS) == [pnm.CtlStatus.READY]
        wrong = replace(target, priv_key="not-the-priv-key")
        with pytest.raises((SnmpRejected, SnmpTimeout)):
            snmp.get(fast(wrong), pnm.SYS_DESCR)


@pytest.fixture(scope="module")
def farm6() -> Iterator[ModemFarm]:
    """One simulated modem listening on ::1 only."""
    with ModemFarm(1, host="::1", measure_delay_s=0.2) as running:
        yield running


def test_ipv6_modem_answers_get_set_and_walk(farm6: ModemFarm, snmp: SnmpClient) -> None:
    target = farm6[0].target()
    assert target.host == "::1"

    (descr,) = snmp.get(target, pnm.SYS_DESCR)
    assert isinstance(descr, bytes)
    assert descr.startswith(b"DOCSIS 3.1 Cable Modem")
    assert snmp.set(target, (pnm.BULK_DEST_PATH, b"/v6/")) == [b"/v6/"]
    assert values_by_suffix(snmp.walk(target, pnm.OFDM_CHANNEL_ID), pnm.OFDM_CHANNEL_ID) == {
        3: 193,
        4: 194,
    }
    assert snmp.get(farm6[0].v3_target(), pnm.BULK_DEST_PATH) == [b"/v6/"]


def test_ipv6_target_does_not_reach_an_ipv4_only_agent(farm: ModemFarm, snmp: SnmpClient) -> None:
    """The transport follows the address family: ::1 on an IPv4-only agent's port is silence."""
    modem = farm[OK]
    with pytest.raises(SnmpTimeout):
        snmp.get(fast(replace(modem.target(), host="::1")), pnm.SYS_DESCR)
    assert snmp.get(modem.target(), pnm.CTL_STATUS) == [pnm.CtlStatus.READY]


@pytest.mark.parametrize(
    ("host", "ipv6"),
    [("::1", True), ("2001:db8::5", True), ("127.0.0.1", False), ("modem.local", False)],
)
def test_is_ipv6(host: str, ipv6: bool) -> None:
    assert is_ipv6(host) is ipv6


def shared_name_user(tag: str) -> V3User:
    """The same v3 user name on every modem, each with its own auth and priv keys."""
    return V3User(
        user="pnmuser",
        auth_key=f"auth-key-of-{tag}",
        priv_key=f"priv-key-of-{tag}",
        priv_protocol="AES",
    )


def test_v3_keys_of_modems_sharing_a_user_name_never_mix() -> None:
    """Two agents (distinct engine IDs) with the same user name and different keys, polled
    concurrently from one process: every request uses its own modem's keys."""
    with (
        ModemFarm(1, v3_user=shared_name_user("a")) as farm_a,
        ModemFarm(1, v3_user=shared_name_user("b")) as farm_b,
    ):
        assert farm_a.engine_id != farm_b.engine_id
        targets = [farm_a[0].v3_target(retries=2), farm_b[0].v3_target(retries=2)]
        one = SnmpClient()
        try:
            with ThreadPoolExecutor(8) as pool:
                answers = list(
                    pool.map(lambda target: one.get(target, pnm.SYS_DESCR)[0], targets * 100)
                )
        finally:
            one.close()
    assert len(answers) == 200
    assert all(
        isinstance(answer, bytes) and answer.startswith(b"DOCSIS 3.1 Cable Modem")
        for answer in answers
    )


def test_v3_keys_changed_on_the_modem_are_used_and_the_old_ones_dropped() -> None:
    with ModemFarm(1, v3_user=shared_name_user("old")) as farm:
        old = farm[0].v3_target()
        one = SnmpClient()
        try:
            assert one.get(old, pnm.CTL_STATUS) == [pnm.CtlStatus.READY]

            farm.set_v3_user(shared_name_user("new"))
            new = farm[0].v3_target()

            assert one.get(new, pnm.CTL_STATUS) == [pnm.CtlStatus.READY]
            with pytest.raises((SnmpRejected, SnmpTimeout)):
                one.get(fast(old), pnm.CTL_STATUS)  # the agent refuses them now
            assert one.get(new, pnm.CTL_STATUS) == [pnm.CtlStatus.READY]
        finally:
            one.close()


def test_v3_secrets_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    user = shared_name_user("logged")
    with ModemFarm(1, v3_user=user) as farm, caplog.at_level(logging.DEBUG):
        one = SnmpClient()
        try:
            one.get(farm[0].v3_target(), pnm.SYS_DESCR)
            with pytest.raises((SnmpRejected, SnmpTimeout)):
                one.get(
                    fast(replace(farm[0].v3_target(), auth_key="wrong-auth-key")), pnm.SYS_DESCR
                )
        finally:
            one.close()
    assert user.auth_key not in caplog.text
    assert user.priv_key not in caplog.text
    assert "wrong-auth-key" not in caplog.text


def target_rows(client: SnmpClient) -> dict:
    """pysnmp's target-address rows in the client's engine, by their key."""
    engine = client._engine
    assert engine is not None
    return engine.get_user_context(snmp_module._LCD_CACHE)["addr"]


def test_idle_targets_leave_the_engine_so_distinct_modems_do_not_pile_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pysnmp keeps a target-address row per address it ever sent to; a fleet of distinct
    v3 modems must not grow the engine without bound."""
    monkeypatch.setattr(snmp_module, "_TARGET_CACHE_SIZE", 20)
    client = SnmpClient()
    with ModemFarm(60, distinct_addresses=True) as many:
        try:
            for modem in many:
                reply = client.get(fast(modem.v3_target()), pnm.SYS_DESCR)
                assert reply == [modem.sys_descr.encode()]
            rows = target_rows(client)
            assert len(client._targets) == 20
            assert len({row[2] for row in rows}) == 20  # addresses: not 60
            assert {row[2][0] for row in rows} == {m.address for m in list(many)[-20:]}
            # A forgotten modem is reached again: its row comes back.
            reply = client.get(fast(many[0].v3_target()), pnm.SYS_DESCR)
            assert reply == [many[0].sys_descr.encode()]
        finally:
            client.close()


def test_a_target_with_a_request_in_flight_keeps_its_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A silent modem's GET waits its whole budget while other modems are reached: its row
    stays (a retry resends through it), the others' rows go."""
    monkeypatch.setattr(snmp_module, "_TARGET_CACHE_SIZE", 2)
    client = SnmpClient()
    with ModemFarm(6, distinct_addresses=True, failures={0: Failure.TIMEOUT}) as few:
        try:
            slow = replace(few[0].v3_target(), timeout_s=0.6, retries=1)
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(client.get, slow, pnm.SYS_DESCR)
                time.sleep(0.1)
                for modem in list(few)[1:]:
                    client.get(fast(modem.v3_target()), pnm.SYS_DESCR)
                addresses = {row[2][0] for row in target_rows(client)}
                # in flight: kept beyond the size; then the most recent; the rest are gone
                assert addresses == {few[0].address, few[5].address}
                with pytest.raises(SnmpTimeout):
                    waiting.result(5)
        finally:
            client.close()
