"""Leases: one owner at a time, only the owner renews or releases, a dead owner's lease
expires. On the Redis cache (atomic scripts) and on the file cache fallback (the demo)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from django.core.cache import cache

from core import locks

KEY = "test:lease"


@pytest.fixture(params=["redis", "file"])
def backend(request, settings, tmp_path) -> Iterator[str]:
    """The test settings' Redis cache, or the embedded demo's file cache."""
    if request.param == "file":
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                "LOCATION": str(tmp_path / "cache"),
            }
        }
    assert (locks.cache_redis() is not None) == (request.param == "redis")
    cache.delete(KEY)
    yield request.param
    cache.delete(KEY)


def test_holders_reads_many_keys_at_once(backend):
    other = f"{KEY}:other"
    cache.delete(other)
    lease = locks.acquire(KEY, 30)
    assert lease is not None
    assert locks.holders([KEY, other]) == {KEY: lease.token, other: None}
    assert locks.holders([]) == {}
    assert lease.release()


def test_one_owner_at_a_time(backend):
    lease = locks.acquire(KEY, 30)
    assert lease is not None
    assert locks.acquire(KEY, 30) is None
    assert locks.holder(KEY) == lease.token
    assert lease.release()
    assert locks.holder(KEY) is None
    assert locks.acquire(KEY, 30) is not None


def test_only_the_owner_renews_or_releases(backend):
    lease = locks.acquire(KEY, 30, token="owner")
    assert lease is not None
    stranger = locks.attach(KEY, "stranger", 30)
    assert not stranger.renew()
    assert not stranger.release()
    assert locks.holder(KEY) == "owner"
    travelled = locks.attach(KEY, "owner", 30)  # the token came through a task's arguments
    assert travelled.renew(60)
    assert travelled.release()
    assert not lease.release()  # already free


def test_held_releases_on_exit_and_yields_none_when_taken(backend):
    with locks.held(KEY, 30) as lease:
        assert lease is not None
        with locks.held(KEY, 30) as second:
            assert second is None
        assert locks.holder(KEY) == lease.token  # the loser did not free it
    assert locks.holder(KEY) is None


def test_a_dead_owners_lease_expires(backend):
    assert locks.acquire(KEY, 1) is not None
    deadline = time.monotonic() + 10
    while locks.acquire(KEY, 30) is None:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)


def test_renew_keeps_a_short_lease_alive(backend):
    lease = locks.acquire(KEY, 1)
    assert lease is not None
    for _ in range(3):
        assert lease.renew(30)
    assert locks.acquire(KEY, 30) is None
    assert lease.release()


def test_racing_threads_get_one_lease():
    winners: list[str] = []
    start = threading.Barrier(8)

    def contend() -> None:
        start.wait(timeout=10)
        lease = locks.acquire(KEY, 30)
        if lease is not None:
            winners.append(lease.token)

    cache.delete(KEY)
    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(winners) == 1
    assert locks.holder(KEY) == winners[0]
    cache.delete(KEY)
