"""Django's PostgreSQL backend, with a pool check paid once a second per connection.

With ``CONN_HEALTH_CHECKS`` Django gives its psycopg pool ``ConnectionPool.check_connection``:
an empty query, one round trip, on every ``getconn``. A threads worker hands its connection
back before each SNMP exchange and each wait (``core.connections.hand_back``), so a
campaign capture took 8 connections out of the pool and paid 8 round trips for the check:
a sixth of all its statements. Here a connection that passed the check less than
``FRESH_S`` ago, and that psycopg still sees open and idle, is handed out unchecked.

What that gives up: a server connection killed within that second (a PostgreSQL restart)
is found by the query that uses it instead of by the check. That query fails as if the
server had gone a moment later, which the callers already survive (a task retries, a
request answers 5xx), and Django then closes the connection, so the pool drops it.
"""

from __future__ import annotations

import threading
import time
import weakref

from django.db.backends.postgresql import base
from psycopg import Connection
from psycopg.pq import ConnStatus, TransactionStatus
from psycopg_pool import ConnectionPool

FRESH_S = 1.0

_checked_at: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()
_checked_lock = threading.Lock()


def check_unless_fresh(conn: Connection) -> None:
    """The pool's check, skipped for a connection checked in the last ``FRESH_S``."""
    now = time.monotonic()
    with _checked_lock:
        last = _checked_at.get(conn)
    idle = (
        conn.info.status == ConnStatus.OK and conn.info.transaction_status == TransactionStatus.IDLE
    )
    if last is not None and now - last < FRESH_S and idle:
        return
    ConnectionPool.check_connection(conn)
    with _checked_lock:
        _checked_at[conn] = now


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's wrapper; its pool (Django builds it on first use) checks with
    ``check_unless_fresh`` where Django asked for a check on every checkout."""

    @property
    def pool(self) -> ConnectionPool | None:
        pool = super().pool
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = check_unless_fresh  # no public setter; tested with the pinned pool
        return pool
