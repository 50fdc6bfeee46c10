"""A Redis cache whose clear() removes only its own keys.

Django's RedisCache.clear() runs FLUSHDB. When the broker shares the Redis database (tests,
small deployments) that also deletes kombu's queue bindings, and later task messages are
silently routed nowhere. Clearing by key prefix keeps the broker intact.
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache

_DELETE_BATCH = 500


class PrefixedRedisCache(RedisCache):
    def clear(self) -> bool:
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
