"""Typed reads of environment variables that fail loudly, naming the variable.

Settings read everything through these helpers so that a malformed value stops
start-up with a message an operator can act on, instead of a confusing error later.
"""

from __future__ import annotations

import builtins
import ipaddress
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
NETWORK_SCHEMES = ("postgres", "postgresql", "redis", "rediss")


_N = TypeVar("_N", int, float)


def _in_range(name: str, number: _N, minimum: _N | None, maximum: _N | None) -> _N:
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {number}")
    return number


def _finite(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {value!r}")
    return number


def _redacted(url: str) -> str:
    """The URL without its password, for an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


class Env:
    """Reads variables from a mapping (``os.environ`` by default)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def _raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        return None if value is None else value.strip()

    def is_set(self, name: str) -> bool:
        return bool(self._raw(name))

    def str(self, name: str, default: str = "") -> str:
        value = self._raw(name)
        return default if value is None or value == "" else value

    def required(self, name: builtins.str) -> builtins.str:
        value = self._raw(name)
        if not value:
            raise ImproperlyConfigured(f"{name} must be set")
        return value

    def bool(self, name: builtins.str, default: bool = False) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfigured(f"{name} must be a boolean (true/false, 1/0), got {value!r}")

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        minimum: builtins.int | None = None,
        maximum: builtins.int | None = None,
    ) -> builtins.int:
        value = self._raw(name)
        if value is None or value == "":
            return default
        try:
            number = builtins.int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
        return _in_range(name, number, minimum, maximum)

    def float(
        self,
        name: builtins.str,
        default: builtins.float,
        minimum: builtins.float | None = None,
        maximum: builtins.float | None = None,
    ) -> builtins.float:
        value = self._raw(name)
        if value is None or value == "":
            return default
        return _in_range(name, _finite(name, value), minimum, maximum)

    def choice(
        self, name: builtins.str, default: builtins.str, choices: tuple[builtins.str, ...]
    ) -> builtins.str:
        """One of a fixed set of words, compared without regard to case."""
        value = self.str(name, default)
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")

    def list(
        self, name: builtins.str, default: builtins.list[builtins.str] | None = None
    ) -> builtins.list[builtins.str]:
        value = self._raw(name)
        if value is None or value == "":
            return list(default or [])
        return [item.strip() for item in value.split(",") if item.strip()]

    def networks(self, name: builtins.str) -> builtins.list[builtins.str]:
        """A comma-separated list of networks in CIDR notation (a bare address is a /32)."""
        networks = []
        for item in self.list(name):
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ImproperlyConfigured(
                    f"{name} must list networks like 10.0.0.0/8, got {item!r}"
                ) from None
        return networks

    def token(self, name: builtins.str, min_length: builtins.int = 16) -> builtins.str:
        """A shared secret (empty when unset); the message never repeats its value."""
        value = self.str(name)
        if value and not re.fullmatch(rf"[A-Za-z0-9._~+/-]{{{min_length},256}}", value):
            raise ImproperlyConfigured(
                f"{name} must be {min_length} to 256 characters of A-Z a-z 0-9 . _ ~ + / -"
            )
        return value

    def path(self, name: builtins.str, default: Path) -> Path:
        value = self._raw(name)
        return Path(value).expanduser() if value else default

    def url(
        self, name: builtins.str, default: builtins.str, schemes: tuple[builtins.str, ...]
    ) -> builtins.str:
        """A URL with one of ``schemes``, a valid port, and for Redis a host and database number.

        (PostgreSQL may leave the host out: libpq then uses its local socket.)
        """
        value = self.str(name, default)
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ImproperlyConfigured(
                f"{name} must be a URL with scheme {' or '.join(schemes)}://, "
                f"got {_redacted(value)!r}"
            )
        if parts.scheme in NETWORK_SCHEMES:
            try:
                parts.port  # noqa: B018 - raises on a malformed or out-of-range port
            except ValueError:
                raise ImproperlyConfigured(f"{name} has a malformed port") from None
        if parts.scheme in ("redis", "rediss"):
            if not parts.hostname:
                raise ImproperlyConfigured(f"{name} must name a host, got {_redacted(value)!r}")
            db = parts.path.strip("/")
            if db and not (db.isdigit() and builtins.int(db) < 16):
                raise ImproperlyConfigured(
                    f"{name} must end with a database number 0-15 (redis://host:6379/0), got /{db}"
                )
        return value

    def database(self, name: builtins.str, default: builtins.str) -> dict[builtins.str, Any]:
        """Parse ``postgres://user:pass@host:port/db`` or ``sqlite:///path`` into DATABASES."""
        value = self.url(name, default, ("postgres", "postgresql", "sqlite"))
        return parse_database_url(name, value)


def process_role(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """What this process is, for names the operator sees (PostgreSQL's application_name):
    FIELDRELAY_ROLE if set, else read off the command line (``celery ... worker -n snmp@%h``
    is ``worker-snmp``, ``manage.py tftp_receiver`` is ``tftp_receiver``)."""
    argv = sys.argv if argv is None else argv
    role = (os.environ if environ is None else environ).get("FIELDRELAY_ROLE", "").strip()
    if role:
        return role
    first = argv[0] if argv else ""
    program = Path(first).name
    # (``python -m celery`` leaves .../celery/__main__.py in argv[0])
    if "gunicorn" in first:
        return "web"
    if "celery" in first:
        for verb in ("worker", "beat", "flower"):
            if verb in argv:
                if verb == "worker" and "-n" in argv[:-1]:
                    return f"worker-{argv[argv.index('-n') + 1].split('@')[0]}"
                return verb
        return "celery"
    if program == "manage.py" and len(argv) > 1:
        return argv[1]
    return program.removesuffix(".py") or "python"


def parse_database_url(name: str, value: str) -> dict[str, Any]:
    parts = urlsplit(value)
    options = dict(parse_qsl(parts.query))
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        if path.startswith("/") and parts.netloc == "":
            path = path[1:] if path.startswith("//") else path
        if not path or path == "/":
            raise ImproperlyConfigured(f"{name} must name a file: sqlite:///path/to/db.sqlite3")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "OPTIONS": {"timeout": 20, **options},
        }
    db_name = unquote(parts.path.lstrip("/"))
    if not db_name:
        raise ImproperlyConfigured(f"{name} must name a database: postgres://user@host:5432/name")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has a malformed port") from None
    return {
        "ENGINE": "config.postgresql",
        "NAME": db_name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": 5, **options},
    }
