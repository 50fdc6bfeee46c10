"""Errors of the API are JSON, including bodies over Django's upload limit."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from tests.helpers import role_user

TEN_MB = "x" * (10 * 1024 * 1024)


@pytest.fixture
def api(db) -> APIClient:
    client = APIClient()
    client.force_authenticate(role_user("field-operator", "operator"))
    return client


@pytest.mark.parametrize("path", ["/api/v1/devices/seismographs/", "/api/v1/captures/operations/"])
def test_an_oversize_body_gets_a_json_413(api, path):
    body = json.dumps({"conn_key": TEN_MB})
    response = api.post(path, body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]


def test_request_bodies_are_json_only(api):
    response = api.post(
        "/api/v1/devices/seismographs/",
        "conn_key=tcp:127.0.0.1:9",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415
    assert "application/x-www-form-urlencoded" in response.json()["detail"]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("operation=", 200),  # empty: no filter, as the schema says
        ("operation=%C2%A0", 200),  # blank (a no-break space): the form strips it to empty
        ("state=maybe", 400),  # a value the filter cannot use is refused, not ignored
    ],
)
def test_a_filter_value_is_used_or_refused(api, query, status):
    path = "operations" if query.startswith("state") else "transactions"
    response = api.get(f"/api/v1/captures/{path}/?{query}")
    assert response.status_code == status, response.content
    if status == 400:
        assert "state" in response.json()
