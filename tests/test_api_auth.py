"""Every API endpoint refuses requests without credentials; the schema validates."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = {"/health/"}


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(route: str) -> str:
    """A request path for a route: every converter or group gets a plausible value."""
    path = route.lstrip("^").rstrip("$")
    path = re.sub(r"<(?:\w+:)?\w+>", "1", path)
    path = re.sub(r"\(\?P<format>[^)]*\)", "", path)
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "1", path)
    path = path.replace("\\.", ".").replace("/?", "/").replace("\\", "")
    return "/" + path


def api_paths() -> list[str]:
    routes = {_concrete(route) for route in _walk(get_resolver().url_patterns)}
    return sorted(path for path in routes if path.startswith("/api/v1/"))


@pytest.mark.django_db
def test_every_api_endpoint_requires_credentials(client):
    paths = api_paths()
    for path in paths:
        for method in ("get", "post", "put", "patch", "delete"):
            response = getattr(client, method)(path)
            assert response.status_code in (401, 403, 404, 405), (
                method,
                path,
                response.status_code,
            )
            assert response.status_code != 200


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
