"""The Redis broker transport with one client per channel.

kombu's Redis channel builds a new ``redis.Redis`` for every publish, acknowledgement and
unacked-index step (``conn_or_acquire``); with redis-py 8 each costs about 75 µs (its
event dispatcher and response-callback table), which was a tenth of the ingest worker's
CPU in a campaign. A client over a connection pool is thread-safe, so the channel keeps
one per pool and hands it out instead. Selected by ``CELERY_BROKER_TRANSPORT`` for
``redis://`` brokers (``config/settings/base.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    # kombu's own, which its type hints leave out
    _pool: Any
    pool: Any
    _create_client: Callable[..., Any]
    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool  # rebuilt by kombu after a connection loss: then a new client
        if self._shared_client is None or self._shared_client.connection_pool is not pool:
            self._shared_client = self._create_client()
        yield self._shared_client


class Transport(redis.Transport):
    Channel = Channel
