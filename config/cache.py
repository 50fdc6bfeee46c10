"""A Redis cache whose clear() removes only its own keys, and that reuses its clients.

Django's RedisCache.clear() runs FLUSHDB. When the broker shares the Redis database (tests,
small deployments) that also deletes kombu's queue bindings, and later task messages are
silently routed nowhere. Clearing by key prefix keeps the broker intact.

Django also builds a new ``redis.Redis`` object for every cache call; with redis-py 8 that
costs ~0.3 ms of CPU each (its response-callback tables), more than the round trip itself,
and a PNM capture makes ~10 cache calls. A ``redis.Redis`` is thread-safe over its pool, so
one per pool is enough.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis import Redis

_DELETE_BATCH = 500


class ReusingRedisCacheClient(RedisCacheClient):
    """One ``redis.Redis`` per connection pool (Django's own pool choice), built on first
    use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Redis] = {}

    def get_client(self, key: object = None, *, write: bool = False) -> Redis:
        # Both are private to Django's client and absent from django-stubs.
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class PrefixedRedisCache(RedisCache):
    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

    def clear(self) -> bool:  # type: ignore[override]  # as Django's RedisCache; stub says None
        client = self._cache.get_client(None, write=True)
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{self.key_prefix}:*", count=_DELETE_BATCH):
            batch.append(key)
            if len(batch) >= _DELETE_BATCH:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
        return True
