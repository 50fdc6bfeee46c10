"""The wheel is what the image installs: it must carry templates and static files, and a
site installed from it alone (outside the checkout) must render the dashboard, the admin
and the API docs."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow

PACKAGE_DATA = {
    "monitoring/templates/monitoring/dashboard.html",
    "monitoring/static/monitoring/dashboard.js",
    "monitoring/static/monitoring/dashboard.css",
    "monitoring/static/monitoring/plot.js",
    "accounts/templates/admin/accounts/apitoken/key_once.html",
}

# Run inside the fresh venv, from a folder outside the checkout: production settings on an
# SQLite file, collectstatic, then the pages through Django's test client over "https".
RENDER = """
import json, django, pathlib, sys
from django.core.management import call_command
django.setup()
import config, monitoring
from django.conf import settings
call_command("migrate", verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)
from django.contrib.auth import get_user_model
from django.test import Client
user = get_user_model().objects.create_superuser("wheel", "wheel@example.net", "x")
anonymous, staff = Client(), Client()
staff.force_login(user)
pages = {
    "dashboard": staff.get("/monitoring/", secure=True),
    "dashboard_js": anonymous.get("/static/monitoring/dashboard.js", secure=True),
    "admin_login": anonymous.get("/admin/login/", secure=True),
    "admin_index": staff.get("/admin/", secure=True),
    "api_docs": staff.get("/api/docs/", secure=True),
    "api_schema": staff.get("/api/schema/", secure=True),
}
print(json.dumps({
    "modules": [config.__file__, monitoring.__file__],
    "status": {name: r.status_code for name, r in pages.items()},
    "dashboard_has_script": b"dashboard.js" in pages["dashboard"].content,
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(ROOT), "-w", str(out)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (built,) = out.glob("fieldrelay-*.whl")
    return built


def test_the_wheel_carries_templates_and_static_files(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert names >= PACKAGE_DATA, sorted(PACKAGE_DATA - names)


def test_a_site_installed_from_the_wheel_renders_its_pages(wheel: Path, tmp_path: Path):
    """A venv outside the checkout gets the wheel only; the dependencies come from this
    interpreter's site-packages through a path file (no network), never the checkout."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    work = tmp_path / "site"
    work.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "wheel-test-" + "k" * 48,
        "ALLOWED_HOSTS": "testserver",
        "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
        "FIELDRELAY_VAR_DIR": str(work / "var"),
        "STATIC_ROOT": str(work / "static"),
        "MPLCONFIGDIR": str(work / "mpl"),
    }
    result = subprocess.run(
        [str(python), "-I", "-c", RENDER],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for module in report["modules"]:
        assert module.startswith(str(site)), module  # the wheel's copy, not the checkout's
    assert report["status"] == {
        "dashboard": 200,
        "dashboard_js": 200,
        "admin_login": 200,
        "admin_index": 200,
        "api_docs": 200,
        "api_schema": 200,
    }
    assert report["dashboard_has_script"]
