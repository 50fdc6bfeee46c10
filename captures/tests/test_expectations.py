"""Expected uploads in the cache: each file under its own name, and every waiting file of a
modem under the MIB default name, so a modem that ignores the FileName is still matched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache

from captures import expectations
from captures.models import Capture
from devices.links.pnm import PnmTest, default_file_name, stored_file_name
from tests.factories import make_modem, make_operation, rxmer_capture

pytestmark = pytest.mark.django_db(transaction=True)


def waiting_file(operation, tick: int) -> Capture:
    name = stored_file_name(PnmTest.RXMER, operation.modem.mac_address, 193, 1_700_000_000 + tick)
    capture = rxmer_capture(operation, tick, 193, name)
    assert capture is not None
    return capture


def cached(lookup: str) -> list[int]:
    """The captures the cache holds under one lookup key, in order."""
    return [entry["context"]["capture"] for entry in cache.get(expectations.PREFIX + lookup) or []]


# Each test's modem has an address of its own: its keys are its own.


def test_each_file_is_kept_under_its_name_and_all_under_the_mib_default_name():
    operation = make_operation(make_modem(ip_address="127.0.0.11"))
    first, second = waiting_file(operation, 1), waiting_file(operation, 2)

    registered = [expectations.register(capture, operation.modem) for capture in (first, second)]

    (first_name, shared), (second_name, same_shared) = (e.lookup_keys() for e in registered)
    assert shared == same_shared
    assert cached(first_name) == [first.pk]
    assert cached(second_name) == [second.pk]
    assert cached(shared) == [first.pk, second.pk]  # the oldest first
    store = expectations.CacheExpectationStore()
    mib_name = default_file_name(PnmTest.RXMER, operation.modem.mac_address, 1_700_000_009)
    found = store.match(mib_name, "127.0.0.11")
    assert found is not None
    assert found.context["capture"] == first.pk
    found = store.match(second.file_name, "127.0.0.11")
    assert found is not None
    assert found.context["capture"] == second.pk


def test_registering_drops_expired_entries_of_the_mib_default_name():
    operation = make_operation(make_modem(ip_address="127.0.0.12"))
    old, new = waiting_file(operation, 1), waiting_file(operation, 2)
    old.deadline -= timedelta(hours=1)  # its deadline passed: the receiver no longer wants it
    expired = expectations.register(old, operation.modem)
    assert expired.expired()

    expectations.register(new, operation.modem)

    _, shared = expired.lookup_keys()
    assert cached(shared) == [new.pk]


def test_forgetting_a_file_keeps_the_others_of_its_modem():
    operation = make_operation(make_modem(ip_address="127.0.0.13"))
    first, second = waiting_file(operation, 1), waiting_file(operation, 2)
    registered = [expectations.register(capture, operation.modem) for capture in (first, second)]

    expectations.forget(registered[0])

    (first_name, shared), (second_name, _) = (e.lookup_keys() for e in registered)
    assert cached(first_name) == []
    assert cached(second_name) == [second.pk]
    assert cached(shared) == [first.pk, second.pk]  # left to expire (match skips it)
