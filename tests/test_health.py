"""/health/ reports database, broker and cache reachability: status to anyone, details to staff."""

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user("health-staff", password="x", is_staff=True)
    client.force_login(user)
    return client


def test_anonymous_callers_see_the_status_only(client, unused_tcp_port):
    assert client.get("/health/").json() == {"status": "ok"}
    with override_settings(
        CELERY_BROKER_URL=f"redis://127.0.0.1:{unused_tcp_port}/0", HEALTH_CHECK_TIMEOUT_S=0.5
    ):
        response = client.get("/health/")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert str(unused_tcp_port) not in response.content.decode()


def test_non_staff_users_see_the_status_only(client):
    client.force_login(get_user_model().objects.create_user("health-plain", password="x"))
    assert client.get("/health/").json() == {"status": "ok"}


def test_healthy_when_everything_answers(staff_client):
    response = staff_client.get("/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "broker", "cache"}
    assert all(check["ok"] for check in body["checks"].values())


def test_503_names_the_unreachable_broker(staff_client, unused_tcp_port):
    with override_settings(
        CELERY_BROKER_URL=f"redis://127.0.0.1:{unused_tcp_port}/0", HEALTH_CHECK_TIMEOUT_S=0.5
    ):
        response = staff_client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_503_names_the_unreachable_cache(staff_client, unused_tcp_port):
    caches = {
        "default": {
            "BACKEND": "config.cache.PrefixedRedisCache",
            "LOCATION": f"redis://127.0.0.1:{unused_tcp_port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    with override_settings(CACHES=caches):
        response = staff_client.get("/health/")
    assert response.status_code == 503
    assert response.json()["failing"] == ["cache"]


@pytest.fixture
def unused_tcp_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
