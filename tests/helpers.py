"""Helpers shared by test modules: fixtures live in the conftest files, and test modules
import plain helpers from here (never from a conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from config.queues import Queue

if TYPE_CHECKING:
    from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent
ALL_QUEUES = ",".join(queue.value for queue in Queue)


def _test_database_url() -> str:
    """The URL of the database pytest-django created, for processes the tests start."""
    db = connection.settings_dict
    parts = urlsplit(os.environ["DATABASE_URL"])
    netloc = parts.netloc
    return urlunsplit((parts.scheme, netloc, "/" + db["NAME"], parts.query, ""))


def worker_environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": _test_database_url(),
            "FIELDRELAY_STORAGE_ROOT": str(settings.FIELDRELAY_STORAGE_ROOT),
            "FIELDRELAY_SPOOL_DIR": str(settings.FIELDRELAY_SPOOL_DIR),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def embedded_environment(var_dir: Path) -> dict[str, str]:
    """The demo's embedded settings (SQLite, file cache) for a process the test starts."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    env.update(
        {"DJANGO_SETTINGS_MODULE": "config.settings.local", "FIELDRELAY_VAR_DIR": str(var_dir)}
    )
    return env


def embedded_manage(var_dir: Path, *args: str) -> str:
    """``manage.py *args`` on the embedded settings; its stdout (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=embedded_environment(var_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


class WorkerProcess:
    """A ``celery worker`` subprocess; stopped (and reaped) by ``stop``."""

    def __init__(
        self,
        queues: str,
        name: str,
        log_path: Path,
        env: dict[str, str],
        pool: str = "solo",
        *,
        concurrency: int = 4,
        include: str = "",
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-P",
                pool,
                *(["-c", str(concurrency)] if pool == "threads" else []),
                *(["-I", include] if include else []),
                "-Q",
                queues,
                "-n",
                name,
                "-l",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while "ready." not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready in {timeout} s:\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.proc, timeout)
        self._log.close()


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout``; reaped either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def worker_round_trip(timeout: float = 30.0) -> str:
    """Run Celery's own ``celery.accumulate`` on the default queue and wait for its result
    in the PostgreSQL result backend: broker, worker and database agree. With one solo
    worker it also means every task queued before this call has been processed. Returns
    the name of the worker that ran it."""
    from celery.result import AsyncResult
    from django_celery_results.models import TaskResult

    from config.celery_app import app

    token = uuid.uuid4().hex
    result: AsyncResult = app.send_task("celery.accumulate", args=[token], ignore_result=False)
    assert result.get(timeout=timeout) == [token]
    # (django-celery-results ships no stubs: its model's fields are untyped to mypy)
    return str(getattr(TaskResult.objects.get(task_id=result.id), "worker", "") or "")


def role_user(username: str, *roles: str, **fields: Any) -> Any:
    """A user in the given roles (Django groups seeded by accounts' migration)."""
    from django.contrib.auth import get_user_model

    from accounts.roles import grant

    user = get_user_model().objects.create_user(username, password="pw-not-secret-1", **fields)
    grant(user, *roles)
    return user


def token_client(user: Any, scopes: tuple[str, ...] | None = None, name: str = "test") -> APIClient:
    """An APIClient sending ``Authorization: Token <key>`` of a new token of ``user``."""
    from rest_framework.test import APIClient

    from accounts.models import ApiToken, Scope

    _, key = ApiToken.objects.issue(user, name, set(scopes or Scope.values))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def assert_400_naming(response: Any, path: list[str]) -> None:
    """A 400 whose JSON body names the refused field along ``path`` (nested keys)."""
    assert response.status_code == 400, response.content
    errors = response.json()
    for key in path:
        assert key in errors, errors
        errors = errors[key]
