"""The dashboard end to end: Debian's Chromium, the live server, real samples in the database.

Samples go in through the ingest API (line protocol), the page is loaded after a real
login, and the checks read the DOM, the requests the page made and the canvas pixels of a
screenshot. A second tab with another range must keep its own view.
"""

from __future__ import annotations

import io
import os
import random
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from accounts.models import ApiToken
from monitoring.bpm import BPM_KX_MM, BPM_KY_MM
from monitoring.models import Instrument
from simulators import instruments as sim

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "dashboard-e2e-pass"
HISTORY_S = 10 * 60
RATE_HZ = 10
READY_TIMEOUT_MS = 30_000
SCREENSHOT_DIR = os.environ.get("DASHBOARD_SCREENSHOT_DIR")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is missing: run .ci/browser-setup.sh (Debian's chromium)",
    ),
]


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def post_history(base_url: str, token: str, names: list[str], end: float) -> int:
    """Ten minutes of simulated 10 Hz samples for each monitor, through the ingest API."""
    first_ns = int((end - HISTORY_S) * 1e9)
    step_ns = 1_000_000_000 // RATE_HZ
    monitors = [sim.Monitor.from_name(name) for name in names]
    rng = random.Random(6)
    posted = 0
    for chunk_start in range(0, HISTORY_S * RATE_HZ, 1000):
        lines = []
        for index in range(chunk_start, min(chunk_start + 1000, HISTORY_S * RATE_HZ)):
            t_ns = first_ns + index * step_ns
            lines += [sim.line(m, t_ns, sim.buttons(m, t_ns / 1e9, rng)) for m in monitors]
        request = urllib.request.Request(  # noqa: S310 - the live server on 127.0.0.1
            f"{base_url}/api/v1/monitoring/samples",
            data="\n".join(lines).encode(),
            headers={"Authorization": f"Token {token}", "Content-Type": "text/plain"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert response.status in (200, 201, 202, 204)
        posted += len(lines)
    return posted


@pytest.fixture
def user(admin_user):
    """A user who can log in with PASSWORD (set before the browser starts: no ORM after)."""
    admin_user.set_password(PASSWORD)
    admin_user.save()
    return admin_user


@pytest.fixture
def monitors(live_server, user):
    """Two BPMs with ten minutes of data ending now."""
    _, token = ApiToken.objects.issue(user, "e2e", {"ingest"})
    names = ["E2E01", "E2E02"]
    created = [Instrument.objects.create(name=name, kind="bpm") for name in names]
    end = time.time()
    assert post_history(live_server.url, token, names, end) == len(names) * HISTORY_S * RATE_HZ
    return created, end


@pytest.fixture
def quiet(user):
    """A BPM without samples."""
    return Instrument.objects.create(name="E2E-QUIET", kind="bpm")


@pytest.fixture
def browser():
    # Started after the database fixtures, so it is closed before they tear down.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def series_requests(page) -> list[dict[str, str]]:
    """Start recording the series requests a page makes; returns the live list."""
    seen: list[dict[str, str]] = []

    def record(request) -> None:
        if "/series" in request.url:
            query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
            seen.append({"path": urlsplit(request.url).path, **query})

    page.on("request", record)
    return seen


def wait_ready(page, count: int) -> None:
    """Every one of count panels has drawn data; on timeout, fail with what the page says."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            """count => {
                const panels = document.querySelectorAll('section.panel');
                return panels.length === count && [...panels].every(
                    p => p.dataset.state === 'ready' && Number(p.dataset.points) > 0);
            }""",
            arg=count,
            timeout=READY_TIMEOUT_MS,
        )
    except PlaywrightTimeout:
        state = page.evaluate(
            """() => ({status: document.getElementById('status')?.textContent,
                panels: [...document.querySelectorAll('section.panel')].map(
                    p => [p.dataset.state, p.querySelector('.meta').textContent])})"""
        )
        pytest.fail(f"dashboard not ready at {page.url}: {state}")


def drawn_pixels(png: bytes) -> int:
    """Pixels of a screenshot in a plot colour (saturated), not white, grey or black."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return int(((pixels.max(axis=2) - pixels.min(axis=2)) > 60).sum())


def save(png: bytes, name: str) -> None:
    if SCREENSHOT_DIR:
        Path(SCREENSHOT_DIR, name).write_bytes(png)


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/monitoring/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/monitoring/**")


@pytest.mark.django_db(transaction=True)
def test_dashboard_plots_real_samples_and_keeps_state_per_tab(live_server, user, monitors, browser):
    (first, second), end = monitors
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab_a = context.new_page()
    log_in(tab_a, live_server.url, user.username)
    errors: list[str] = []
    tab_a.on("pageerror", lambda error: errors.append(str(error)))

    def console_error(message) -> None:
        if message.type == "error":
            errors.append(message.text)

    tab_a.on("console", console_error)

    # Tab A: both monitors, live over the last 15 minutes.
    requests_a = series_requests(tab_a)
    tab_a.goto(f"{live_server.url}/monitoring/#ids={first.id},{second.id}&live=900")
    wait_ready(tab_a, 2)
    assert {r["path"] for r in requests_a} == {
        f"/api/v1/monitoring/instruments/{first.id}/series",
        f"/api/v1/monitoring/instruments/{second.id}/series",
    }
    plot_width = tab_a.evaluate("document.querySelector('.plot-channels').clientWidth - 64 - 12")
    assert abs(int(requests_a[0]["max_points"]) - plot_width) <= 1
    panel = tab_a.locator(f"section.panel[data-instrument='{first.id}']")
    assert panel.locator("h3").inner_text() == "E2E01"
    assert int(panel.get_attribute("data-points")) >= 4 * 100
    channels_png = panel.locator(".plot-channels canvas.data").screenshot()
    position_png = panel.locator(".plot-position canvas.data").screenshot()
    save(tab_a.screenshot(full_page=True), "dashboard-tab-a.png")
    assert drawn_pixels(channels_png) > 500, "no button traces on the canvas"
    assert drawn_pixels(position_png) > 300, "no x/y traces on the canvas"

    # The page's x/y convention inverts the simulator's button model.
    monitor = sim.Monitor.from_name("E2E01")
    t = end - 60
    values = dict(zip(sim.BUTTONS, sim.buttons(monitor, t, random.Random(1)), strict=True))
    x, y = tab_a.evaluate(
        """async ([values, kx, ky]) => {
            const {positionPerSample} = await import('/static/monitoring/position.js');
            const series = Object.fromEntries(
                Object.entries(values).map(([k, v]) => [k, [[0, v]]]));
            const {x, y} = positionPerSample(series, kx, ky);
            return [x[0][1], y[0][1]];
        }""",
        [values, BPM_KX_MM, BPM_KY_MM],
    )
    true_x, true_y = sim.orbit(monitor, t)
    assert (x, y) == (pytest.approx(true_x, abs=0.15), pytest.approx(true_y, abs=0.08))

    # Tab B: one monitor over a fixed two-minute range of the past.
    tab_b = context.new_page()
    tab_b.on("pageerror", lambda error: errors.append(str(error)))
    requests_b = series_requests(tab_b)
    b_start, b_end = iso(end - 300), iso(end - 180)
    tab_b.goto(f"{live_server.url}/monitoring/#ids={first.id}&start={b_start}&end={b_end}")
    wait_ready(tab_b, 1)
    assert (requests_b[-1]["start"], requests_b[-1]["end"]) == (b_start, b_end)
    assert tab_b.get_attribute(".panel", "data-resolution") == "raw"

    # Zoom in tab B by dragging across the middle of the plot: a narrower re-query.
    overlay = tab_b.locator(".plot-channels canvas.overlay").bounding_box()
    y = overlay["y"] + overlay["height"] / 2
    before = len(requests_b)
    tab_b.mouse.move(overlay["x"] + overlay["width"] * 0.4, y)
    tab_b.mouse.down()
    tab_b.mouse.move(overlay["x"] + overlay["width"] * 0.6, y, steps=5)
    tab_b.mouse.up()
    tab_b.wait_for_function(
        f"location.hash.includes('start=') && !location.hash.includes('{b_start}')"
    )
    wait_ready(tab_b, 1)
    zoomed = requests_b[before:]
    assert zoomed, "zooming did not re-query the API"
    assert b_start < zoomed[-1]["start"] < zoomed[-1]["end"] < b_end
    save(tab_b.screenshot(full_page=True), "dashboard-tab-b-zoomed.png")

    # Browser back undoes the zoom: the earlier range is queried again.
    tab_b.go_back()
    tab_b.wait_for_function(f"location.hash.includes('{b_start}')")
    wait_ready(tab_b, 1)
    assert (requests_b[-1]["start"], requests_b[-1]["end"]) == (b_start, b_end)
    tab_b.mouse.move(overlay["x"] + overlay["width"] * 0.7, y)  # the hover readout
    save(tab_b.screenshot(full_page=True), "dashboard-tab-b-back.png")

    # Three wheel steps in: each narrows the range by 0.8 around the pointer, one re-query.
    before = len(requests_b)
    for _ in range(3):
        tab_b.mouse.wheel(0, -100)
    tab_b.wait_for_function(f"!location.hash.includes('{b_start}')")
    wait_ready(tab_b, 1)
    wheeled = requests_b[before:]
    assert 1 <= len(wheeled) <= 3
    span_s = (parse_iso(wheeled[-1]["end"]) - parse_iso(wheeled[-1]["start"])).total_seconds()
    assert span_s == pytest.approx(120 * 0.8**3, rel=0.01)

    # Meanwhile tab A, still live, keeps re-querying a range that ends later and later.
    ends = len(requests_a)
    with tab_a.expect_request(lambda r: "/series" in r.url, timeout=READY_TIMEOUT_MS):
        pass
    assert requests_a[-1]["end"] > requests_a[ends - 1]["end"]
    assert f"ids={first.id},{second.id}&live=900" in tab_a.evaluate("location.hash")

    # A reload of tab A without a hash restores its view from this tab's storage alone.
    tab_a.goto(f"{live_server.url}/monitoring/")
    wait_ready(tab_a, 2)
    assert tab_a.evaluate("location.hash") == f"#ids={first.id},{second.id}&live=900"
    assert tab_b.evaluate("location.hash").startswith(f"#ids={first.id}&start=")
    assert errors == []
    context.close()


@pytest.mark.django_db(transaction=True)
def test_a_view_change_aborts_the_previous_views_requests(live_server, user, quiet, browser):
    page = browser.new_context().new_page()
    log_in(page, live_server.url, user.username)
    held: list[str] = []

    def hold_the_first(route) -> None:
        # The first series request never gets an answer: a stalled range.
        if held:
            route.continue_()
        else:
            held.append(route.request.url)

    page.goto("about:blank")  # a fresh page load below: no request of the login redirect's view
    page.route("**/series?*", hold_the_first)
    with page.expect_request("**/series?*"):
        page.goto(f"{live_server.url}/monitoring/#ids={quiet.id}&live=600")
    with page.expect_event("requestfailed", timeout=READY_TIMEOUT_MS) as failed:
        page.click("#presets button[data-seconds='3600']")
    assert failed.value.url == held[0]
    assert "ABORTED" in failed.value.failure
    page.wait_for_selector("section.panel[data-state='ready']", timeout=READY_TIMEOUT_MS)
    assert page.evaluate("location.hash") == f"#ids={quiet.id}&live=3600"
    page.context.close()
