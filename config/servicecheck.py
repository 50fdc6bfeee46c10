"""Say in one line whether the services the tests need answer, and how to start them.

Run before the test suite (``python -m config.servicecheck``); imports no Django.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

import psycopg
import redis

START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = (
    "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no"
)


def check_postgres(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        conn = psycopg.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password or None,
            dbname="postgres",
            connect_timeout=3,
        )
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"{parts.hostname}:{parts.port or 5432}"
        return f"PostgreSQL at {where} is unreachable ({first}); start it with: {START_POSTGRES}"
    conn.close()
    return None


def check_redis(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        where = f"{parts.hostname}:{parts.port or 6379}"
        return f"Redis at {where} is unreachable ({exc}); start it with: {START_REDIS}"
    return None


def main() -> int:
    problems = [
        problem
        for problem in (
            check_postgres(
                os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fieldrelay")
            ),
            check_redis(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")),
        )
        if problem
    ]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
