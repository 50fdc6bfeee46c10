"""The trailing-slash rule (core/urls.py) and the URLs that answer: router URLs end in
``/``; hand-written API routes answer with and without it; ``plot.png`` is a file name."""

from __future__ import annotations

import pytest
from django.urls import Resolver404, resolve

OP = "0123456789abcdef"
TX = "fedcba9876543210"

ANSWER = [
    ("/api/v1/captures/operations/", "operation-list"),
    (f"/api/v1/captures/operations/{OP}/", "operation-detail"),
    (f"/api/v1/captures/operations/{OP}/status/", "operation-status-"),
    (f"/api/v1/captures/operations/{OP}/analysis/", "operation-analysis"),
    (f"/api/v1/captures/operations/{OP}/analysis", "operation-analysis"),
    ("/api/v1/captures/transactions/", "transaction-list"),
    (f"/api/v1/captures/transactions/{TX}/download/", "transaction-download"),
    (f"/api/v1/captures/transactions/{TX}/parsed/", "transaction-parsed"),
    (f"/api/v1/captures/transactions/{TX}/parsed", "transaction-parsed"),
    (f"/api/v1/captures/transactions/{TX}/plot.png", "transaction-plot"),
    ("/api/v1/devices/seismographs/", "seismograph-list"),
    ("/api/v1/devices/seismographs/cache-stats/", "seismograph-cache-stats"),
    ("/api/v1/devices/seismographs/7/events/2/waveform/raw/", "seismograph-waveform-raw"),
    ("/api/v1/devices/tasks/0123abcd/", "seismo-task"),
    ("/api/v1/devices/tasks/0123abcd", "seismo-task"),
    ("/api/v1/monitoring/instruments/", "monitoring-instrument-list"),
    ("/api/v1/monitoring/instruments/3/", "monitoring-instrument-detail"),
    ("/api/v1/monitoring/instruments/3/series/", "monitoring-instrument-series"),
    ("/api/v1/monitoring/instruments/3/series", "monitoring-instrument-series"),
    ("/api/v1/monitoring/samples/", "monitoring-samples"),
    ("/api/v1/monitoring/samples", "monitoring-samples"),
    ("/api/v1/monitoring/series/", "monitoring-series"),
    ("/api/v1/monitoring/series", "monitoring-series"),
    ("/monitoring/", "dashboard"),
    ("/health/", "health"),
]

# Router URLs need their slash (CommonMiddleware redirects a GET to it).
NO_MATCH = [
    "/api/v1/captures/operations",
    "/api/v1/devices/seismographs",
    "/api/v1/monitoring/instruments",
    "/api/v1/monitoring/instruments/3",
    f"/api/v1/captures/transactions/{TX}/plot.png/",
]


@pytest.mark.parametrize(("path", "name"), ANSWER)
def test_url_answers(path, name):
    assert resolve(path).url_name == name


@pytest.mark.parametrize("path", NO_MATCH)
def test_router_urls_keep_their_slash(path):
    with pytest.raises(Resolver404):
        resolve(path)
