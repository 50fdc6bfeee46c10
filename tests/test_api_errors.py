"""Errors of the API are JSON, including bodies over Django's upload limit."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

TEN_MB = "x" * (10 * 1024 * 1024)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/devices/seismographs/", "/api/v1/captures/operations/"])
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({"conn_key": TEN_MB}), "application/json"),
        (f"conn_key={TEN_MB}", "application/x-www-form-urlencoded"),
    ],
)
def test_an_oversize_body_gets_a_json_413(path, body, content_type):
    api = APIClient()
    api.force_authenticate(get_user_model().objects.create_user("integrator"))
    response = api.post(path, body, content_type=content_type)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]
