"""The reference API's web page in a real headless browser (Debian's chromium via Playwright):
live printer view and a pause round trip through the whole gateway."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from simulator import PrintJob, SimulatorThread
from simulator.server import NASTY_FILE
from tests.support.http import TOKEN
from tests.support.processes import running

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("PRINTER_GATEWAY_REQUIRE_BROWSER") != "1":
    pytest.skip(
        "no chromium here (CI installs it: apt-get install chromium)", allow_module_level=True
    )
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_page_shows_the_print_live_and_pauses_it(sim: SimulatorThread, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    sim.call(lambda: sim.sim.model.start_print(PrintJob(file="page.gx", duration_s=90)))
    screenshot = Path(os.environ.get("PRINTER_GATEWAY_SCREENSHOT", tmp_path / "page.png"))
    with running(tmp_path, sim) as (api, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 420})
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"{api.url}/ui/gw#token={TOKEN}")
            card = page.locator("#p-rex1")
            expect(card.locator(".state")).to_have_text("printing", timeout=20_000)
            expect(card.locator(".file")).to_have_text("file page.gx")
            expect(card.locator(".nozzle")).to_contain_text("/ 210 °C")
            progress = card.locator(".progress")
            expect(progress).not_to_have_text("progress 0.0 %", timeout=15_000)
            first = progress.inner_text()
            expect(progress).not_to_have_text(first, timeout=10_000)  # it moves: live, no reload
            assert "token" not in page.url  # the token left the address bar
            card.get_by_role("button", name="Pause").click()
            expect(card.locator(".result")).to_contain_text("pause: done", timeout=20_000)
            expect(card.locator(".state")).to_have_text("paused", timeout=10_000)
            page.screenshot(path=str(screenshot))
            # A file name made of markup and escape codes is shown as text, never run.
            sim.set_faults(hostile="nasty_text")
            expect(card.locator(".file")).to_have_text(f"file {NASTY_FILE}", timeout=10_000)
            assert page.locator("img").count() == 0
            assert card.locator(".file b").count() == 0
            assert not [m for m in console if "Content Security Policy" in m], console
            other = browser.new_page()
            other.goto(f"{api.url}/ui/gw")  # no token: the data stays behind the login
            expect(other.locator("#login")).to_be_visible(timeout=10_000)
            expect(other.locator(".printer")).to_have_count(0)
        finally:
            browser.close()
    assert sim.truth()["status"] == "PAUSED"
    assert screenshot.stat().st_size > 10_000
