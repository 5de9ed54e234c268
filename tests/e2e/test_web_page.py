"""The reference web app in a real headless browser (Debian's chromium via Playwright): the
dashboard and a printer's page live through the whole gateway, commands and their results,
buttons that follow the state, a confirmed cancel, a chart from stored statuses, the print
history, stale data greyed out, and printer text that is never markup."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest

from gateway.messages import Job, PrinterInfo, Status, Temperature
from simulator import PrintJob, SimulatorThread
from simulator.server import NASTY_FILE, NASTY_NAME
from tests.support.http import TOKEN, ApiThread
from tests.support.processes import running
from tests.support.programs import BROWSER_ARGS, CHROMIUM
from tests.support.waiting import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.e2e
if CHROMIUM is None and os.environ.get("PRINTER_GATEWAY_REQUIRE_BROWSER") != "1":
    pytest.skip(
        "no chromium here (CI installs it: apt-get install chromium)", allow_module_level=True
    )
SCREENSHOTS = os.environ.get("PRINTER_GATEWAY_SCREENSHOTS")  # a folder: README pictures


@contextmanager
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def sent(sim: SimulatorThread, code: str) -> int:
    return sum(1 for e in sim.wire() if e.what == "in" and e.text.split()[0] == f"~{code}")


def shoot(page: object, name: str, tmp_path: Path) -> Path:
    path = Path(SCREENSHOTS or tmp_path) / name
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def test_dashboard_and_printer_page_live_with_commands(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    sim.call(lambda: sim.sim.model.start_print(PrintJob(file="page.gx", duration_s=300)))
    with running(tmp_path, sim) as (api, _), browser() as chromium:
        page = chromium.new_page(viewport={"width": 1000, "height": 700})
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(f"{api.url}/#token={TOKEN}")  # the root is the dashboard of every gateway
        card = page.locator("article[data-printer=rex1]")
        expect(card.locator(".state")).to_have_text("Printing", timeout=20_000)
        expect(card.locator(".file")).to_contain_text("page.gx")
        expect(card.locator(".nozzle")).to_contain_text("/ 210 °C")
        progress = card.locator(".progress")
        expect(progress).not_to_contain_text("0.0 %", timeout=15_000)
        first = progress.inner_text()
        expect(progress).not_to_have_text(first, timeout=10_000)  # live, no reload
        expect(card.locator(".seen")).to_contain_text("Updated")
        assert "token" not in page.url  # the token left the address bar
        shoot(page, "web-dashboard.png", tmp_path)

        card.locator("a.name").click()  # the printer's own page
        expect(page).to_have_url(f"{api.url}/ui/gw/rex1")
        pause = page.get_by_role("button", name="Pause")
        resume = page.get_by_role("button", name="Resume")
        expect(pause).to_be_enabled(timeout=10_000)
        expect(resume).to_be_disabled()  # nothing to resume while printing

        page.get_by_role("button", name="Cancel print…").click()  # one misclick cancels nothing
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("page.gx")
        page.get_by_role("button", name="Keep printing").click()
        expect(dialog).to_be_hidden()

        pause.click()
        row = page.locator("#commands tbody tr").first
        expect(row).to_contain_text("Pause", timeout=10_000)
        expect(row).to_contain_text("Done", timeout=20_000)
        expect(page.locator("article .state")).to_have_text("Paused", timeout=10_000)
        expect(page.get_by_role("button", name="Pause")).to_be_disabled()
        expect(page.get_by_role("button", name="Resume")).to_be_enabled()

        page.locator("#bed-target").fill("400")  # above the gateway's limit: refused, safely
        page.locator("fieldset", has_text="Bed").get_by_role("button", name="Set").click()
        refused = page.locator("#commands tbody tr").first
        expect(refused).to_contain_text("Bed to 400 °C", timeout=10_000)
        expect(refused).to_contain_text("Refused", timeout=20_000)

        # Resumed, then cancelled for real behind the confirmation: the print's job record
        # shows in the history (the poller made it when the print ended).
        page.get_by_role("button", name="Resume").click()
        expect(page.locator("article .state")).to_have_text("Printing", timeout=20_000)
        page.get_by_role("button", name="Cancel print…").click()
        page.get_by_role("button", name="Yes, cancel the print").click()
        history = page.locator("#jobs tbody tr")
        expect(history).to_have_count(1, timeout=30_000)
        expect(history).to_contain_text("page.gx")
        expect(history).to_contain_text("Cancelled")
        expect(history).to_contain_text("1 (")  # one pause

        chart = page.locator("#chart svg")
        expect(chart).to_be_visible(timeout=20_000)
        # Nozzle, bed and progress lines drawn from the stored statuses (redrawn every 15 s).
        wait_for(lambda: chart.locator("polyline").count() >= 3, 40, what="the chart's lines")
        shoot(page, "web-printer.png", tmp_path)

        # Printer-supplied text made of markup and escape codes is shown as text, never run.
        sim.set_faults(hostile="nasty_text")
        sim.call(lambda: sim.sim.model.start_print(PrintJob(file="next.gx", duration_s=300)))
        page.goto(f"{api.url}/ui/")
        card = page.locator("article[data-printer=rex1]")
        expect(card.locator(".file")).to_contain_text(NASTY_FILE, timeout=15_000)
        assert page.locator("article img").count() == 0
        assert card.locator(".file b").count() == 0
        assert not [m for m in console if "Content Security Policy" in m], console

        other = chromium.new_page()
        other.goto(f"{api.url}/ui/gw")  # no token: the data stays behind the login
        expect(other.locator("#login")).to_be_visible(timeout=10_000)
        expect(other.locator("article")).to_have_count(0)
    assert sent(sim, "M26") == 1  # cancelled through the page, once
    assert sim.truth()["bed"][1] != 400  # type: ignore[index]


def test_stale_printers_are_greyed_and_history_rows_are_text(tmp_path: Path) -> None:
    """The Pi died ten minutes ago: its last status must not look live. A printer's name and
    a job's file name made of markup are text (records posted as a gateway would)."""
    from playwright.sync_api import expect

    now = datetime.now(UTC)
    status = Status(
        id="s1",
        printer_id="rex1",
        ts=now,
        state="printing",
        nozzle=Temperature(209, 210),
        progress_percent=40.0,
        file="vase.gx",
        printer=PrinterInfo(name=NASTY_NAME, model="Adventurer 3", firmware="v2.2.1"),
    )
    job = Job(
        id="j1",
        printer_id="rex1",
        seq=1,
        ts=now,
        job_id="job-1",
        file="<b>bold</b>.gx",
        outcome="cancelled",
        started_at=now - timedelta(hours=2),
        ended_at=now - timedelta(hours=1),
        print_s=3000.0,
        pause_count=1,
        paused_s=120.0,
    )
    db = tmp_path / "api.db"
    with ApiThread(db) as api, browser() as chromium:
        body = {"gateway_id": "attic", "records": msgspec.to_builtins([status, job])}
        assert api.post("/v1/records", body).status_code == 200
        with sqlite3.connect(db) as conn:  # ten minutes pass without a word from the Pi
            conn.execute("UPDATE latest_status SET received_at = received_at - 600")
        page = chromium.new_page(viewport={"width": 420, "height": 800})  # a phone
        page.goto(f"{api.url}/ui/#token={TOKEN}")
        card = page.locator("article[data-printer=rex1]")
        expect(card).to_have_class("printer stale", timeout=10_000)
        expect(card.locator(".seen")).to_contain_text("Last update 10 min ago")
        expect(card.locator(".name")).to_have_text(NASTY_NAME)  # a name, not an image
        expect(card).to_contain_text("Adventurer 3 · v2.2.1")
        assert page.locator("article img").count() == 0
        page.goto(f"{api.url}/ui/attic/rex1")
        expect(page.get_by_role("button", name="Pause")).to_be_disabled(timeout=10_000)
        expect(page.locator("#view")).to_contain_text("Commands are off")
        history = page.locator("#jobs tbody tr")
        expect(history).to_have_count(1)
        expect(history.locator(".job-file")).to_have_text("<b>bold</b>.gx")
        expect(history).to_contain_text("Cancelled")
        assert history.locator("b").count() == 0
        shoot(page, "web-phone-stale.png", tmp_path)
