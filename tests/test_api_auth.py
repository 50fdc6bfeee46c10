"""Every API endpoint refuses requests without credentials; the schema validates."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve

ROOT = Path(__file__).resolve().parent.parent


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


HEX16 = "0123456789abcdef"


def _sample(group_regex: str) -> str:
    """A value a route's named group accepts: a 16-hex id, a number, or a word."""
    if "{16}" in group_regex:
        return HEX16
    return "1"


def _concrete(route: str) -> str:
    """A request path for a route: every converter or group gets a value it accepts."""
    path = route.replace("^", "").replace("$", "")
    path = re.sub(r"\\.\(\?P<format>[^)]*\)/?", "", path)
    path = re.sub(r"\(\?P<\w+>([^)]*)\)", lambda m: _sample(m.group(1)), path)
    path = re.sub(r"<(?:\w+:)?\w+>", "1", path)
    path = path.replace("/?", "/").replace("\\.", ".").replace("\\", "")
    return "/" + path


def api_paths() -> list[str]:
    routes = {_concrete(route) for route in _walk(get_resolver().url_patterns)}
    return sorted(path for path in routes if path.startswith("/api/v1/"))


def test_every_api_route_yields_a_resolvable_path():
    paths = api_paths()
    assert len(paths) >= 25
    for path in paths:
        resolve(path)  # raises Resolver404 if the sample path misses its route


@pytest.mark.django_db
def test_every_api_endpoint_requires_credentials(client):
    paths = api_paths()
    for path in paths:
        for method in ("get", "post", "put", "patch", "delete"):
            response = getattr(client, method)(path)
            # Paths resolve (test above), so a 404 would mean a view answered anonymously.
            assert response.status_code in (401, 403, 405), (method, path, response.status_code)


@pytest.mark.django_db
def test_schema_and_docs_need_a_login(client):
    assert client.get("/api/schema/").status_code in (401, 403)
    assert client.get("/api/docs/").status_code in (401, 403)


@pytest.mark.django_db
def test_schema_and_docs_need_no_cdn(admin_client):
    docs = admin_client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()


def test_openapi_schema_validates_without_warnings():
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            "/dev/null",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
