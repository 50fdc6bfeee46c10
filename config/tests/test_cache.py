"""Clearing the cache must not touch other keys in the same Redis database (the broker's)."""

import pytest
import redis
from django.conf import settings
from django.core.cache import cache


@pytest.mark.django_db
def test_clear_keeps_keys_that_are_not_the_caches():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.set("_kombu.binding.test-clear", "keep me")
    cache.set("clear-me", 1)
    try:
        cache.clear()
        assert cache.get("clear-me") is None
        assert client.get("_kombu.binding.test-clear") == b"keep me"
    finally:
        client.delete("_kombu.binding.test-clear")
