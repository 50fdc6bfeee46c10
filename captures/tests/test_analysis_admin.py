"""The transaction admin panel: parsed header and figures, and the plot image."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from captures.analysis_admin import parsed_panel
from captures.models import Transaction
from captures.pypnm_import import import_data_dir
from captures.tests.test_pypnm_interop import T1, T4, build_data_dir


@pytest.fixture
def imported(tmp_path: Path, settings, db) -> None:
    settings.FIELDRELAY_STORAGE_ROOT = tmp_path / "storage"
    import_data_dir(build_data_dir(tmp_path / "data"))


def test_panel_shows_header_figures_and_plot(imported) -> None:
    panel = str(parsed_panel(Transaction.objects.get(transaction_id=T1)))
    assert f'src="/api/v1/captures/transactions/{T1}/plot.png"' in panel
    pre = panel.split("<pre", 1)[1].split(">", 1)[1].split("</pre>")[0]
    summary = json.loads(html.unescape(pre))
    assert summary["header"]["test_type"] == "DS_OFDM_RXMER_PER_SUBCAR"
    assert summary["channel_id"] == 193
    assert summary["stats"]["subcarriers"] == 7600
    assert "rxmer_db" not in summary  # figures only, not 7600 values


def test_panel_for_a_missing_file_says_so(imported, settings, tmp_path: Path) -> None:
    record = Transaction.objects.get(transaction_id=T4)
    (Path(settings.FIELDRELAY_STORAGE_ROOT) / record.stored_path).unlink()
    assert "cannot be read" in str(parsed_panel(record))


def test_transaction_admin_page_shows_the_panel(imported, admin_client) -> None:
    record = Transaction.objects.get(transaction_id=T1)
    response = admin_client.get(f"/admin/captures/transaction/{record.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f"/api/v1/captures/transactions/{T1}/plot.png" in page
    assert "DS_OFDM_RXMER_PER_SUBCAR" in page
    plot = admin_client.get(f"/api/v1/captures/transactions/{T1}/plot.png")
    assert plot.status_code == 200  # the admin session is enough to load the image
    assert plot["Content-Type"] == "image/png"
