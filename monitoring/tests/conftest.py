"""Fixtures of the monitoring tests: instruments, an authenticated API client, sample data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.tests.helpers import role_user, token_client
from monitoring.models import Instrument

# A fixed, recent-enough origin: tests pass "now" explicitly where time matters.
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_series_cache():
    """Series of closed ranges are cached by instrument id: ids repeat across test runs."""
    cache.clear()


@pytest.fixture
def bpm(db) -> Instrument:
    return Instrument.objects.create(name="10AE", kind=Instrument.Kind.BPM)


@pytest.fixture
def bpms(db) -> list[Instrument]:
    return [Instrument.objects.create(name=f"BPM{i:02d}") for i in range(3)]


@pytest.fixture
def api(db) -> APIClient:
    """Reads and ingest: an integrator's token with the read and ingest scopes."""
    return token_client(role_user("collector", "integrator"), scopes=("read", "ingest"))
