"""The receiver's word that a capture's file is in, for a trigger task waiting on it.

A trigger task on a ``threads`` worker may wait (``PNM_ARRIVAL_WAIT_S``) for its upload
instead of handing the first MeasStatus poll to a follow-up task: in the usual case the file
arrives well within a poll interval and the tick ends right there, which saves a task per
capture. The wait is a Redis BLPOP on a per-capture list that the receiver pushes to, so a
waiting thread costs no CPU. Without a Redis cache (the embedded demo) nothing waits and the
poll tasks do the work, as they do whenever the file is late.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.cache import caches
from redis import Redis
from redis.exceptions import RedisError

from core.locks import cache_redis

KEY_TTL_S = 120  # an announcement nobody waited for disappears on its own
MAX_WAIT_S = 4.0  # below the cache's socket_timeout (5 s), which would cut a longer BLPOP


def _redis() -> Redis | None:
    """The cache's Redis client, or None when the cache is not Redis."""
    found = cache_redis()
    return None if found is None else found[0]


def _key(capture_pk: int) -> str:
    return caches["default"].make_key(f"pnm:arrived:{capture_pk}")


def enabled() -> bool:
    return settings.PNM_ARRIVAL_WAIT_S > 0 and _redis() is not None


def announce(capture_pks: Iterable[int]) -> None:
    """The receiver has the complete files of ``capture_pks`` (called once they are
    marked); nothing to do when no trigger task waits (``enabled``)."""
    client = _redis()
    if client is None or settings.PNM_ARRIVAL_WAIT_S <= 0:
        return
    with client.pipeline(transaction=False) as pipe:
        for capture_pk in capture_pks:
            key = _key(capture_pk)
            pipe.rpush(key, 1)
            pipe.expire(key, KEY_TTL_S)
        pipe.execute()


def wait(capture_pk: int, timeout_s: float) -> bool:
    """Block up to ``timeout_s`` for the file of ``capture_pk``; True once it is in.

    False on any Redis trouble too: the caller then polls, which needs no announcement.
    """
    client = _redis()
    if client is None or timeout_s <= 0:
        return False
    try:
        return client.blpop([_key(capture_pk)], timeout=min(timeout_s, MAX_WAIT_S)) is not None
    except RedisError:
        return False
