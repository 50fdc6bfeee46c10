"""The Redis broker transport keeps one client per channel instead of kombu's one per
publish and acknowledgement, and still moves every message (real Redis)."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.conf import settings

from config.broker import Channel
from config.celery_app import app

pytestmark = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis://"), reason="needs the Redis broker"
)


@pytest.fixture
def clients_made(monkeypatch) -> list[int]:
    """One entry per ``redis.Redis`` built from now on."""
    made: list[int] = []
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        made.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    return made


def test_messages_go_through_one_client_not_one_per_publish_and_ack(clients_made):
    with app.connection_for_write() as connection:
        assert isinstance(connection.default_channel, Channel)
        queue = connection.SimpleQueue(f"fieldrelay-broker-test-{uuid.uuid4().hex}")
        try:
            for number in range(30):
                queue.put({"n": number})
            received = []
            for _ in range(30):
                message = queue.get(timeout=5)
                received.append(message.payload["n"])
                message.ack()
        finally:
            queue.clear()
            queue.close()

    assert received == list(range(30))
    assert len(clients_made) <= 3  # kombu's own: a new one per put, get step and ack (90+)


def test_a_rebuilt_pool_gets_a_new_client():
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, Channel)
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as again:
            assert first is again
        channel._pool = None  # what kombu does after a connection loss
        with channel.conn_or_acquire() as rebuilt:
            assert rebuilt is not first
            assert rebuilt.connection_pool is channel.pool
            assert rebuilt.ping()
