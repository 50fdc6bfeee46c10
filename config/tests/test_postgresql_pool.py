"""The pool check runs at most once per FRESH_S per connection (real PostgreSQL): a connection
checked a moment ago is handed out without the round trip, one checked longer ago is
checked, and a dead one is then replaced."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from config.postgresql import base
from config.postgresql.base import DatabaseWrapper, check_unless_fresh

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    one = ConnectionPool(
        kwargs=params, min_size=1, max_size=1, check=check_unless_fresh, open=False
    )
    one.open(wait=True, timeout=10)
    try:
        yield one
    finally:
        one.close()


def backend_pid(pool: ConnectionPool) -> int:
    with pool.connection() as conn:
        conn.execute("SELECT 1")  # it works
        return conn.info.backend_pid


def terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"backend {pid} still there")


def test_a_connection_checked_a_moment_ago_is_handed_out_unchecked(pool, monkeypatch):
    monkeypatch.setattr(base, "FRESH_S", 30.0)
    pid = backend_pid(pool)  # checked now
    terminate(pid)
    # No check went to the server: the dead connection comes out, and its query fails.
    with pytest.raises(psycopg.OperationalError), pool.connection() as conn:
        conn.execute("SELECT 1")
    assert backend_pid(pool) != pid  # the pool dropped the broken one and opened another


def test_a_connection_checked_longer_ago_is_checked_and_replaced(pool, monkeypatch):
    monkeypatch.setattr(base, "FRESH_S", 0.2)
    pid = backend_pid(pool)
    terminate(pid)
    time.sleep(0.3)
    assert backend_pid(pool) != pid  # the check found it dead: no query failed


def test_django_pool_uses_the_check():
    options = {**connection.settings_dict["OPTIONS"], "pool": {"min_size": 0, "max_size": 1}}
    pooled = {**connection.settings_dict, "OPTIONS": options, "CONN_MAX_AGE": 0}
    wrapper = DatabaseWrapper(pooled, alias="pooltest")
    try:
        assert wrapper.pool is not None
        assert wrapper.pool._check is check_unless_fresh
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    finally:
        wrapper.close()
        wrapper.close_pool()
