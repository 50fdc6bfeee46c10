"""Leases: the one lock of the project (a per-modem PNM capture, a seismograph's link
session, a single-flight marker, the retention flush on SQLite).

A lease is a key holding its owner's token for a time to live. Only the owner may renew
or release it, and a holder that dies frees it when the TTL runs out, so prefer a short TTL
and ``renew`` while the work goes on. The token is plain text, so it can travel in a task's
arguments and be re-attached with ``attach`` by the task that finishes the work.

With the Redis cache (production, tests) the lease lives in Redis under the cache's key
prefix: taken with ``SET NX PX``, renewed and released by Lua scripts that compare the token
and act in one step. With any other Django cache (the embedded demo's file cache) it falls
back to ``cache.add`` (atomic enough in one process group) and a get-then-act renew and
release: best effort, a lease that expires between the get and the delete can be freed
for a new owner. The demo runs one worker per queue, so this does not arise there.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis import Redis

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def cache_redis(key: str = "") -> tuple[Redis, str] | None:
    """The default cache's Redis client and ``key`` with the cache's prefix, or None when
    the cache is not Redis. For the few things the cache API cannot do atomically."""
    backend = caches["default"]  # the backend itself: ``cache`` is only a proxy to it
    if not isinstance(backend, RedisCache):
        return None
    client: Redis = backend._cache.get_client(key, write=True)
    return client, backend.make_and_validate_key(key)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


@dataclass(frozen=True)
class Lease:
    """A held lease: its key, its owner's token and the TTL it renews to."""

    key: str
    token: str
    ttl_s: float

    def renew(self, ttl_s: float | None = None) -> bool:
        """Reset the TTL (to ``ttl_s`` or the lease's own); False if it is no longer ours."""
        ttl = self.ttl_s if ttl_s is None else ttl_s
        redis = cache_redis(self.key)
        if redis is not None:
            client, key = redis
            return bool(client.eval(_RENEW, 1, key, self.token, _ms(ttl)))
        cache = caches["default"]
        if cache.get(self.key) != self.token:
            return False
        return bool(cache.touch(self.key, math.ceil(ttl)))

    def release(self) -> bool:
        """Free the lease if it is still ours (it may have expired and been taken since)."""
        redis = cache_redis(self.key)
        if redis is not None:
            client, key = redis
            return bool(client.eval(_RELEASE, 1, key, self.token))
        cache = caches["default"]
        if cache.get(self.key) != self.token:
            return False
        cache.delete(self.key)
        return True


def acquire(key: str, ttl_s: float, token: str | None = None) -> Lease | None:
    """Take the lease on ``key`` for ``ttl_s`` seconds, or None if someone holds it.

    ``token`` names the owner (a task id, say); a random one by default.
    """
    token = token or secrets.token_hex(16)
    redis = cache_redis(key)
    if redis is not None:
        client, full_key = redis
        taken = client.set(full_key, token, nx=True, px=_ms(ttl_s))
    else:
        taken = caches["default"].add(key, token, timeout=math.ceil(ttl_s))
    return Lease(key, token, ttl_s) if taken else None


def attach(key: str, token: str, ttl_s: float) -> Lease:
    """The lease ``token`` took on ``key`` (held or not), for a later renew or release."""
    return Lease(key, token, ttl_s)


def holder(key: str) -> str | None:
    """The token holding ``key`` now, or None when it is free."""
    return holders([key])[key]


def holders(keys: list[str]) -> dict[str, str | None]:
    """The token holding each of ``keys`` now (None: free), in one round trip."""
    if not keys:
        return {}
    redis = cache_redis(keys[0])
    if redis is None:
        found = caches["default"].get_many(keys)
        return {key: found.get(key) for key in keys}
    client, _ = redis
    backend = caches["default"]
    values = client.mget([backend.make_and_validate_key(key) for key in keys])
    return {
        key: value.decode() if isinstance(value, bytes) else value
        for key, value in zip(keys, values, strict=True)
    }


@contextmanager
def held(key: str, ttl_s: float) -> Iterator[Lease | None]:
    """Hold the lease for the ``with`` block: yields it, or None when someone else holds it."""
    lease = acquire(key, ttl_s)
    try:
        yield lease
    finally:
        if lease is not None:
            lease.release()
