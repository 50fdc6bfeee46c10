"""Rate limits: 429 with Retry-After once a limit is spent, counted in the shared Redis
cache so that another web process sees the same count."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.test import override_settings
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from accounts.models import ApiToken, Scope
from config.api import check_throttle_rates, parse_rate
from monitoring.models import Instrument
from seismographs.models import Seismograph
from tests.factories import make_modem
from tests.helpers import ROOT, role_user, worker_environment

SEISMOGRAPHS = "/api/v1/devices/seismographs/"


def rates(**changes: str):
    return override_settings(
        REST_FRAMEWORK={
            **api_settings.user_settings,
            "DEFAULT_THROTTLE_RATES": {
                **api_settings.DEFAULT_THROTTLE_RATES,
                **changes,
            },
        },
        SEISMO_API_WAIT_S=0,
    )


def token_for(username: str) -> str:
    """A key of a user who may do all that is limited here (force reads, starts, ingest)."""
    user = role_user(username, "operator", "integrator")
    return ApiToken.objects.issue(user, "rate-test", set(Scope.values))[1]


def client(key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert 0 < int(response["Retry-After"]) <= 3600
    assert "throttled" in response.json()["detail"]


@pytest.fixture(autouse=True)
def _no_counts_left(db):
    """Counts are keyed by row ids, which repeat across runs of the test database."""
    from django.core.cache import cache

    cache.clear()


@pytest.mark.django_db
def test_forced_reads_are_limited_per_unit_whoever_asks():
    north, south = (Seismograph.objects.create(conn_key=f"tcp:127.0.0.1:{p}") for p in (9, 10))
    alice, bob = client(token_for("alice")), client(token_for("bob"))
    with rates(seismo_force="1/h"):
        assert alice.get(f"{SEISMOGRAPHS}{north.pk}/info/?force=true").status_code == 202
        assert_throttled(bob.get(f"{SEISMOGRAPHS}{north.pk}/info/?force=1"))
        assert_throttled(alice.get(f"{SEISMOGRAPHS}{north.pk}/events/?force=yes"))
        # Cached reads are not limited, nor is another unit.
        assert bob.get(f"{SEISMOGRAPHS}{north.pk}/info/").status_code == 202
        assert bob.get(f"{SEISMOGRAPHS}{south.pk}/info/?force=true").status_code == 202


@pytest.mark.django_db
def test_operation_starts_are_limited_per_modem_by_id_or_mac():
    modem, other = make_modem(1), make_modem(2)
    api = client(token_for("integrator"))

    def start(ref) -> int:
        body = {"modem": ref, "test": "multi_rxmer", "duration_s": 60, "sample_interval_s": 10}
        return api.post("/api/v1/captures/operations/", body, format="json").status_code

    with rates(operation_start="2/h"):
        assert start(modem.pk) == 201
        assert start(modem.mac_address.upper()) != 429  # the same modem, by its MAC
        assert start(str(modem.pk)) == 429
        assert start(other.pk) == 201


@pytest.mark.django_db
def test_sample_posts_are_limited_per_token():
    Instrument.objects.create(name="T1", kind="other", channels=["t"])
    first, second = client(token_for("logger-1")), client(token_for("logger-2"))
    line = "env,instrument=T1 t=1 1700000000000000000\n"

    def post(api: APIClient):
        return api.post("/api/v1/monitoring/samples/", line, content_type="text/plain")

    with rates(sample_post="2/h"):
        assert [post(first).status_code for _ in range(2)] == [201, 201]
        assert_throttled(post(first))
        assert post(second).status_code == 201


SECOND_PROCESS = """
import django, sys
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
response = Client().get(sys.argv[1], HTTP_AUTHORIZATION="Token " + sys.argv[2])
print(response.status_code, response.get("Retry-After"))
"""


@pytest.mark.django_db(transaction=True)
def test_another_web_process_shares_the_limit():
    unit = Seismograph.objects.create(conn_key="tcp:127.0.0.1:9")
    key = token_for("alice")
    url = f"{SEISMOGRAPHS}{unit.pk}/info/?force=true"
    env = worker_environment(THROTTLE_SEISMO_FORCE="1/h", SEISMO_API_WAIT_S="0")
    with rates(seismo_force="1/h"):
        assert client(key).get(url).status_code == 202
    other = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, url, key],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status, retry_after = other.stdout.split()[-2:]
    assert status == "429", other.stdout + other.stderr
    assert 0 < int(retry_after) <= 3600


@pytest.mark.parametrize(("rate", "parsed"), [("6/m", (6, 60)), ("1/10s", (1, 10))])
def test_rates_read_count_and_period(rate, parsed):
    assert parse_rate(rate) == parsed


def test_a_malformed_rate_is_a_start_up_error():
    with rates(seismo_force="often"):
        errors = check_throttle_rates(None)
    assert [e.msg for e in errors] == [
        "THROTTLE_SEISMO_FORCE: throttle rate 'often': expected N/period, e.g. 6/m or 1/10s"
    ]
