"""The remote-access recipe (docs/remote-access.md) end to end: the real reference API
(`printer-gateway api` with a token file) behind a real Caddy running the shipped
deploy/Caddyfile, only its site name and upstream swapped for loopback ones. Over HTTPS
verified against Caddy's own CA: the page loads, the data stays behind the token, a command
and a record sent through the proxy are stored, plain HTTP is redirected to HTTPS, and
Caddy's log never holds the token. Then the same in a real browser (Debian's chromium): the
page asks for the token, shows the dashboard and sends a command, all through the proxy."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
import requests

from console.demo import free_port
from gateway.messages import Status, Temperature
from tests.support.caddy import Caddy, need_caddy
from tests.support.cli import Cli
from tests.support.http import answers
from tests.support.programs import BROWSER_ARGS, CHROMIUM, need
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


@contextmanager
def api_process(
    tmp_path: Path, token: str, port: int = 0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`printer-gateway api` on 127.0.0.1:<port, else a free one> with the token in a 0600
    file: its URL and process (killed on exit)."""
    token_file = tmp_path / "token"
    token_file.touch(mode=0o600)
    token_file.write_text(f"{token}\n", encoding="utf-8")
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k != "PRINTER_GATEWAY_TOKEN"}
    with (tmp_path / "api.log").open("ab") as log:
        api = Cli().start(
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "api.db"),
            "--token-file",
            str(token_file),
            stderr=log,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{url}/healthz"), 15, what="the API to answer")
        yield url, api
    finally:
        if api.poll() is None:
            api.send_signal(signal.SIGKILL)
        api.wait(10)


def printing() -> Status:
    """A status record as the gateway posts it: rex1 printing vase.gx."""
    return Status(
        id=f"s-{secrets.token_hex(4)}",
        printer_id="rex1",
        ts=datetime.now(UTC),
        state="printing",
        nozzle=Temperature(209, 210),
        progress_percent=40.0,
        file="vase.gx",
    )


def test_web_app_over_https_through_the_shipped_caddyfile(tmp_path: Path) -> None:
    need_caddy()
    token = secrets.token_urlsafe(32)
    with (
        api_process(tmp_path, token) as (api, api_server),
        Caddy(tmp_path, api.removeprefix("http://")) as caddy,
    ):
        https = requests.Session()
        https.trust_env = False  # else $REQUESTS_CA_BUNDLE would override `verify`
        https.verify = str(caddy.root_ca)  # the site's certificate chains to Caddy's CA
        bearer = {"Authorization": f"Bearer {token}"}

        # The page: / redirects to /ui/, served with the API's own security headers and
        # Caddy's HSTS; its script and style come through too.
        page = https.get(f"{caddy.url}/", timeout=5)
        assert page.status_code == 200, page.text
        assert page.url == f"{caddy.url}/ui/"
        assert "<title>printer-gateway</title>" in page.text
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
        for asset in ("app.js", "app.css"):
            assert https.get(f"{caddy.url}/assets/{asset}", timeout=5).status_code == 200

        # The data stays behind the token, which passes through the proxy untouched.
        assert https.get(f"{caddy.url}/v1/printers", timeout=5).status_code == 401
        wrong = {"Authorization": f"Bearer {token[:-1]}x"}
        assert https.get(f"{caddy.url}/v1/printers", headers=wrong, timeout=5).status_code == 401
        printers = https.get(f"{caddy.url}/v1/printers", headers=bearer, timeout=5)
        assert printers.status_code == 200
        assert printers.json() == {"printers": []}

        # A command as the page sends it: refused without the token, stored with it, and
        # waiting for the gateway on the API's own (LAN) address.
        command = {"gateway_id": "home", "printer_id": "rex1", "type": "pause", "params": {}}
        refused = https.post(f"{caddy.url}/v1/commands", json=command, timeout=5)
        assert refused.status_code == 401
        created = https.post(f"{caddy.url}/v1/commands", json=command, headers=bearer, timeout=5)
        assert created.status_code == 201, created.text
        command_id = created.json()["id"]
        open_commands = requests.get(
            f"{api}/v1/commands", params={"gateway_id": "home"}, headers=bearer, timeout=5
        ).json()["commands"]
        assert [(c["id"], c["type"]) for c in open_commands] == [(command_id, "pause")]
        state = https.get(f"{caddy.url}/v1/commands/{command_id}", headers=bearer, timeout=5)
        assert state.json()["outcome"] is None  # no gateway has run it yet

        # A record posted through the proxy (a gateway elsewhere, with the same token) is
        # what the dashboard then shows.
        body = {"gateway_id": "home", "records": msgspec.to_builtins([printing()])}
        posted = https.post(f"{caddy.url}/v1/records", json=body, headers=bearer, timeout=5)
        assert posted.json() == {"stored": 1, "duplicates": 0}
        shown = https.get(f"{caddy.url}/v1/printers", headers=bearer, timeout=5).json()
        assert [(p["gateway_id"], p["printer_id"], p["file"]) for p in shown["printers"]] == [
            ("home", "rex1", "vase.gx")
        ]

        # Plain HTTP only redirects to HTTPS: no data, no page, token or not.
        plain = requests.get(
            f"http://localhost:{caddy.http_port}/v1/printers?gateway_id=home",
            headers=bearer,
            allow_redirects=False,
            timeout=5,
        )
        assert plain.status_code == 308
        assert plain.headers["Location"] == f"{caddy.url}/v1/printers?gateway_id=home"
        assert b"rex1" not in plain.content

        # Without Caddy's CA the certificate is not trusted (no silent fallback).
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{caddy.url}/ui/", timeout=5)

        # The API down: Caddy answers 502 and logs the request with its Authorization
        # header emptied, never the token.
        api_server.send_signal(signal.SIGKILL)
        api_server.wait(10)
        down = https.get(f"{caddy.url}/v1/printers", headers=bearer, timeout=5)
        assert down.status_code == 502
        log = wait_for(
            lambda: [line for line in caddy.log().splitlines() if "/v1/printers" in line]
        )
        assert '"Authorization":[]' in log[-1]
        assert token not in caddy.log()
    assert caddy.process is None


def test_the_page_in_a_browser_through_the_proxy(tmp_path: Path) -> None:
    need_caddy()
    chromium_path = need(CHROMIUM, "chromium", "PRINTER_GATEWAY_REQUIRE_BROWSER")
    from playwright.sync_api import expect, sync_playwright

    token = secrets.token_urlsafe(32)
    bearer = {"Authorization": f"Bearer {token}"}
    with (
        api_process(tmp_path, token) as (api, server),
        Caddy(tmp_path, api.removeprefix("http://")) as caddy,
        sync_playwright() as playwright,
    ):
        body = {"gateway_id": "home", "records": msgspec.to_builtins([printing()])}
        assert requests.post(f"{api}/v1/records", json=body, headers=bearer, timeout=5).ok
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=BROWSER_ARGS)
        try:
            # Caddy's local CA is not in this browser's store: the certificate itself was
            # checked above; here the page's own behaviour behind the proxy is the point.
            page = chromium.new_page(ignore_https_errors=True)
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"{caddy.url}/")
            expect(page.locator("#login")).to_be_visible(timeout=5_000)  # asks once
            expect(page.locator("#problem")).to_have_text("the API needs its token")
            page.locator("#token").fill("not-the-token")
            page.get_by_role("button", name="Open").click()
            expect(page.locator("#problem")).to_have_text("the API refused this token")
            page.locator("#token").fill(token)
            page.get_by_role("button", name="Open").click()
            card = page.locator("article[data-printer=rex1]")
            expect(card.locator(".state")).to_have_text("Printing", timeout=5_000)
            expect(page.locator("#login")).to_be_hidden()
            card.locator("a.name").click()
            expect(page).to_have_url(f"{caddy.url}/ui/home/rex1")
            page.get_by_role("button", name="Pause").click()
            expect(page.locator("#commands tbody tr").first).to_contain_text("Pause")
            stored = requests.get(
                f"{api}/v1/commands", params={"gateway_id": "home"}, headers=bearer, timeout=5
            ).json()["commands"]
            assert [(c["printer_id"], c["type"]) for c in stored] == [("rex1", "pause")]

            # The token rotated (docs/remote-access.md): a new token file, the API
            # restarted; the open page asks again and takes the new one.
            server.send_signal(signal.SIGKILL)
            server.wait(10)
            rotated = secrets.token_urlsafe(32)
            with api_process(tmp_path, rotated, port=int(api.rsplit(":", 1)[1])):
                expect(page.locator("#login")).to_be_visible(timeout=5_000)
                page.locator("#token").fill(rotated)
                page.get_by_role("button", name="Open").click()
                expect(page.locator("#login")).to_be_hidden(timeout=5_000)
                expect(page.locator("#commands tbody tr").first).to_contain_text("Pause")
            assert not [m for m in console if "Content Security Policy" in m], console
        finally:
            chromium.close()
