"""Who may call what: the permission matrix, generated from the URLconf.

Every API route x method (x ``?force=true`` where a read can reach a device) is requested
as every role: anonymous, a user in no role, viewer, operator, integrator with each token
scope alone, admin. ``EXPECTED`` says, independently of the views' own declarations, which
roles may; a route missing from it (a new endpoint) or a view action without an access rule
fails here. Allowed means the permission layer let the call through: any answer but 401/403
(objects do not exist, so most are 404 or 400 and nothing reaches a device). Refused means
403, and 401 for anonymous. Outside the API only /health/ and the admin login answer
anonymous callers.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from tests.helpers import role_user, token_client

ROOT = Path(__file__).resolve().parent.parent

VIEWER, OPERATOR, ADMIN, NOBODY, ANONYMOUS = "viewer", "operator", "admin", "nobody", "anonymous"
INT_READ, INT_OPERATE, INT_INGEST = "integrator:read", "integrator:operate", "integrator:ingest"
ROLES = [ANONYMOUS, NOBODY, VIEWER, OPERATOR, INT_READ, INT_OPERATE, INT_INGEST, ADMIN]

READ = {VIEWER, OPERATOR, INT_READ, ADMIN}
# Starting/stopping captures and registering modems: the integrator's job too.
CAPTURE_WRITE = {OPERATOR, INT_OPERATE, ADMIN}
# What can hurt a device or drop stored history: operators.
DEVICE_WRITE = {OPERATOR, ADMIN}
INGEST = {INT_INGEST, ADMIN}
SCHEMA = READ | {NOBODY}  # any token with the read scope: the schema holds no data

FORCE = "force"
DEVICE_READS = ["info", "events", "event", "waveform", "waveform-raw", "monitor"]
EXPECTED: dict[tuple[str, ...], set[str]] = {
    ("operation-list", "GET"): READ,
    ("operation-list", "POST"): CAPTURE_WRITE,
    ("operation-detail", "GET"): READ,
    ("operation-archive", "GET"): READ,
    ("operation-status-", "GET"): READ,
    ("operation-stop", "POST"): CAPTURE_WRITE,
    ("operation-analysis", "GET"): READ,
    ("capture-list", "GET"): READ,
    ("capture-list", "POST"): CAPTURE_WRITE,
    ("capture-detail", "GET"): READ,
    ("campaign-list", "GET"): READ,
    ("campaign-list", "POST"): CAPTURE_WRITE,
    ("campaign-detail", "GET"): READ,
    ("campaign-runs", "GET"): READ,
    ("campaign-worst", "GET"): READ,
    ("campaign-distribution", "GET"): READ,
    ("campaign-run", "POST"): CAPTURE_WRITE,
    ("campaign-stop", "POST"): CAPTURE_WRITE,
    ("transaction-list", "GET"): READ,
    ("transaction-detail", "GET"): READ,
    ("transaction-download", "GET"): READ,
    ("transaction-parsed", "GET"): READ,
    ("transaction-plot", "GET"): READ,
    ("transaction-analysis", "GET"): READ,
    ("modem-list", "GET"): READ,
    ("modem-list", "POST"): CAPTURE_WRITE,
    ("modem-detail", "GET"): READ,
    ("modem-detail", "PUT"): CAPTURE_WRITE,
    ("modem-detail", "PATCH"): CAPTURE_WRITE,
    ("modem-detail", "DELETE"): DEVICE_WRITE,
    ("seismograph-list", "GET"): READ,
    ("seismograph-list", "POST"): DEVICE_WRITE,
    ("seismograph-detail", "GET"): READ,
    ("seismograph-detail", "DELETE"): DEVICE_WRITE,
    ("seismograph-cache-stats", "GET"): READ,
    ("seismograph-cache", "GET"): READ,
    ("seismograph-cache", "DELETE"): DEVICE_WRITE,
    ("seismograph-config", "POST"): DEVICE_WRITE,
    ("seismograph-erase", "POST"): DEVICE_WRITE,
    ("seismograph-monitor-start", "POST"): DEVICE_WRITE,
    ("seismograph-monitor-stop", "POST"): DEVICE_WRITE,
    **{(f"seismograph-{name}", "GET"): READ for name in DEVICE_READS},
    **{(f"seismograph-{name}", "GET", FORCE): DEVICE_WRITE for name in DEVICE_READS},
    ("seismo-task", "GET"): READ,
    ("monitoring-instrument-list", "GET"): READ,
    ("monitoring-instrument-detail", "GET"): READ,
    ("monitoring-instrument-series", "GET"): READ,
    ("monitoring-series", "GET"): READ,
    ("monitoring-samples", "POST"): INGEST,
    ("audit-event-list", "GET"): {ADMIN},
    ("audit-event-detail", "GET"): {ADMIN},
    ("schema", "GET"): SCHEMA,
    ("swagger-ui", "GET"): SCHEMA,
}
# Anonymous callers get an answer from these (anything else: 401/403, or a redirect to
# the login page). Static files (admin, Swagger UI and dashboard assets, no data) are
# served by whitenoise outside the URLconf.
PUBLIC = {("/health/", "GET"), ("/admin/login/", "GET"), ("/admin/login/", "POST")}
# Where anonymous callers may be sent instead (the admin index sends them on to the login).
LOGIN_REDIRECTS = ("/admin/login/", "/admin/")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
HEX16 = "0123456789abcdef"


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


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


def _handled(pattern: URLPattern) -> dict[str, str]:
    """METHOD -> the view's handler key (viewset action, or method name) for a route."""
    actions = getattr(pattern.callback, "actions", None)
    if actions is not None:  # (DRF adds "head" as GET's twin after the first request)
        return {m.upper(): action for m, action in actions.items() if m.upper() in METHODS}
    view = getattr(pattern.callback, "cls", None)
    return {m: m.lower() for m in METHODS if hasattr(view, m.lower())}


def api_routes() -> dict[str, tuple[str, URLPattern]]:
    """Route name -> (sample path, pattern) for every route of the API and its schema."""
    routes = {}
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith("api/"):
            routes[pattern.name] = (_concrete(route), pattern)
    return routes


def matrix() -> list[tuple[tuple[str, ...], str, str]]:
    """(EXPECTED key, path, method) for every route x handled method (x force)."""
    cases: list[tuple[tuple[str, ...], str, str]] = []
    for name, (path, pattern) in sorted(api_routes().items()):
        for method in _handled(pattern):
            cases.append(((name, method), path, method))
            if (name, method, FORCE) in EXPECTED:
                cases.append(((name, method, FORCE), f"{path}?force=true", method))
    return cases


def test_every_api_route_yields_a_resolvable_path():
    routes = api_routes()
    assert len(routes) >= 35
    for path, _pattern in routes.values():
        resolve(path.split("?")[0])  # raises Resolver404 if the sample path misses its route


def test_every_route_and_method_has_an_expected_rule():
    generated = {key for key, _path, _method in matrix()}
    assert generated == set(EXPECTED), (
        f"not in EXPECTED (new endpoints need a rule): {sorted(generated - set(EXPECTED))}; "
        f"in EXPECTED but gone: {sorted(set(EXPECTED) - generated)}"
    )


def test_every_view_action_declares_an_access_rule():
    for name, (_path, pattern) in api_routes().items():
        view = getattr(pattern.callback, "cls", None)
        declared = getattr(view, "access", {})
        for method, key in _handled(pattern).items():
            assert key in declared, f"{name} {method}: {view}.{key}"


def _client(role: str):
    from rest_framework.test import APIClient

    if role == ANONYMOUS:
        return APIClient()
    if role.startswith("integrator:"):
        return token_client(role_user("integrator", "integrator"), (role.split(":")[1],))
    return token_client(role_user(role) if role == NOBODY else role_user(role, role))


def _send(client, method: str, path: str):
    return getattr(client, method.lower())(path, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(role):
    client = _client(role)
    wrong = []
    for key, path, method in matrix():
        status = _send(client, method, path).status_code
        if role == ANONYMOUS:
            expected_ok = status == 401
        elif role in EXPECTED[key]:
            expected_ok = status not in (401, 403) and status < 500
        else:
            expected_ok = status == 403
        if not expected_ok:
            wrong.append((method, path, status))
    assert not wrong, f"{role}: {wrong}"


@pytest.mark.django_db
def test_unhandled_methods_are_405_once_authenticated():
    admin, anonymous = _client(ADMIN), _client(ANONYMOUS)
    for path, pattern in api_routes().values():
        for method in sorted(set(METHODS) - set(_handled(pattern))):
            assert _send(admin, method, path).status_code == 405, (method, path)
            assert _send(anonymous, method, path).status_code == 401, (method, path)
        assert admin.options(path).status_code == 405  # no metadata: it describes forms


@pytest.mark.django_db
def test_session_users_have_every_scope_and_their_role(client):
    """Browser sessions (admin, dashboard) go through the same layer, scopes aside."""
    client.force_login(role_user("viewer", "viewer"))
    assert client.get("/api/v1/devices/modems/").status_code == 200
    modems = "/api/v1/devices/modems/"
    assert client.post(modems, {}, content_type="application/json").status_code == 403
    client.force_login(role_user("operator", "operator"))
    assert client.post(modems, {}, content_type="application/json").status_code == 400


@pytest.mark.django_db
def test_anonymous_callers_reach_only_health_and_login(client):
    paths = {_concrete(route) for route, _pattern in _walk(get_resolver().url_patterns)}
    assert {"/health/", "/admin/login/", "/monitoring/"} <= paths
    for path in sorted(paths):
        for method in ("GET", "POST"):
            response = getattr(client, method.lower())(path)
            if (path, method) in PUBLIC:
                continue
            redirected = response.status_code == 302 and (
                response["Location"].split("?")[0] in LOGIN_REDIRECTS
            )
            assert redirected or response.status_code in (401, 403, 405), (
                method,
                path,
                response.status_code,
            )


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
