"""The dashboard page: login required, served locally, states its position convention."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from monitoring.bpm import BPM_KX_MM, BPM_KY_MM

APP_DIR = Path(__file__).resolve().parent.parent
EXTERNAL_URL = re.compile(
    r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|(?:import|from)\s*["'](?:https?:)?//"""
)


@pytest.mark.django_db
def test_anonymous_user_is_sent_to_the_admin_login(client):
    response = client.get(reverse("monitoring:dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert "next=/monitoring/" in response["Location"]


@pytest.mark.django_db
def test_logged_in_user_gets_the_page_with_local_assets(admin_client):
    response = admin_client.get(reverse("monitoring:dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-api-root="/api/v1/monitoring/"' in html
    assert f'data-kx="{BPM_KX_MM}"' in html
    assert f'data-ky="{BPM_KY_MM}"' in html
    assert "x = k<sub>x</sub>·((top_out + bot_out) \N{MINUS SIGN} (top_in + bot_in)) / Σ" in html
    for asset in re.findall(r'(?:src|href)="/static/([^"]+)"', html):
        assert finders.find(asset), f"{asset} is referenced but not shipped"
    assert re.search(r'src="/static/monitoring/dashboard\.js"', html)


@pytest.mark.django_db
def test_the_page_is_get_only(admin_client):
    assert admin_client.post(reverse("monitoring:dashboard")).status_code == 405


def test_no_asset_is_loaded_from_another_host():
    files = [*APP_DIR.glob("templates/**/*.html"), *APP_DIR.glob("static/**/*.js")]
    assert len(files) >= 5
    for path in files:
        text = path.read_text()
        assert not EXTERNAL_URL.search(text), f"{path.name} loads something from another host"
