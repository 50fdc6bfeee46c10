"""The SQLite fallback of the embedded demo: ingest, retention and series without PostgreSQL."""

from __future__ import annotations

import json

import pytest

from tests.helpers import embedded_manage

pytestmark = pytest.mark.slow


def test_ingest_retention_and_series_work_on_sqlite(tmp_path):
    embedded_manage(tmp_path, "migrate", "--noinput", "-v", "0")
    script = "from monitoring.tests.embedded_roundtrip import main; main()"
    seen = json.loads(embedded_manage(tmp_path, "shell", "-c", script).strip().splitlines()[-1])

    assert seen["vendor"] == "sqlite"
    assert (seen["first"], seen["retried"], seen["json"]) == (10, 10, 1)
    assert seen["rejected"].startswith("line 21: unknown instrument 'NOPE'")
    assert seen["snapshot_n"] == 21
    assert seen["second_runner_ran"] is False
    assert seen["flush"]["ran"] is True
    assert seen["cutoff_as_expected"] is True
    assert seen["flush_matches_reference"] is True
    assert seen["flush"]["removed"] == seen["expected_removed"] > 0
    assert seen["raw"][0] == "raw"
    assert 0 < seen["raw"][1] <= 200
    assert seen["minute"][0] == "minute"
    assert 0 < seen["minute"][1] <= 200
