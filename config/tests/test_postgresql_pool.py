"""The PostgreSQL backend (real PostgreSQL): the pool check runs at most once per FRESH_S per
connection (a connection checked a moment ago is handed out without the round trip, one
checked longer ago is checked), and statements run often are prepared."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection

from config.postgresql import base
from config.postgresql.base import DatabaseWrapper, check_unless_fresh

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


@pytest.fixture
def server_connection() -> Iterator[psycopg.Connection]:
    """A plain psycopg connection to the test database, as the pool opens them."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params, autocommit=True) as conn:
        yield conn


def terminate(pid: int) -> None:
    """End server process ``pid`` and wait until it has exited (PostgreSQL 14+; a poll of
    pg_stat_activity would see one snapshot per transaction, the test's)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])
        assert cursor.fetchone() == (True,), f"backend {pid} still there after 10 s"


def test_a_connection_checked_a_moment_ago_is_not_checked_again(server_connection, monkeypatch):
    monkeypatch.setattr(base, "FRESH_S", 30.0)
    check_unless_fresh(server_connection)  # checked now
    terminate(server_connection.info.backend_pid)
    check_unless_fresh(server_connection)  # no round trip: the dead server goes unnoticed
    with pytest.raises(psycopg.OperationalError):
        server_connection.execute("SELECT 1")  # the query finds it instead


def test_a_connection_checked_longer_ago_is_checked(server_connection, monkeypatch):
    monkeypatch.setattr(base, "FRESH_S", 0.2)
    check_unless_fresh(server_connection)
    terminate(server_connection.info.backend_pid)
    time.sleep(0.3)
    with pytest.raises(psycopg.OperationalError):
        check_unless_fresh(server_connection)  # the pool then drops it and opens another


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


def test_statements_are_prepared_once_run_often_enough(settings):
    """Server-side binding with prepared statements (DB_PREPARE_THRESHOLD): PostgreSQL
    plans a statement this connection keeps running once, not at every run."""
    statement = "SELECT count(*) FROM django_migrations WHERE app = %s"
    with connection.cursor() as cursor:
        for _ in range(settings.DB_PREPARE_THRESHOLD + 1):
            cursor.execute(statement, ["captures"])
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = %s",
            [statement.replace("%s", "$1")],
        )
        assert cursor.fetchone() == (1,)
