"""A real Caddy on loopback for the remote-access test, running the shipped
``deploy/Caddyfile`` with only its site name and upstream swapped for the test's.

CI installs Debian's ``caddy`` (``.ci/run``) and sets PRINTER_GATEWAY_REQUIRE_CADDY, so there
a missing Caddy fails; elsewhere the test is skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import requests

from console.demo import free_port
from tests.support.programs import need
from tests.support.waiting import wait_for

CADDY = shutil.which("caddy")
REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "Caddyfile"
SITE = "printers.example.org"  # the placeholder people replace with their own name
UPSTREAM = "127.0.0.1:8080"  # where `printer-gateway api` listens on the Pi

# Prepended to the shipped file (which has no global options of its own): no admin
# endpoint, certificates from Caddy's own local CA instead of Let's Encrypt (localhost
# cannot get a public one), that CA kept out of this machine's trust store, every listener
# on loopback, and the redirect from plain HTTP on a free port instead of 80 (the site's
# own free port is in its address).
GLOBAL_OPTIONS = """{{
\tadmin off
\tlocal_certs
\tskip_install_trust
\tdefault_bind 127.0.0.1
\thttp_port {http_port}
}}

"""


def need_caddy() -> str:
    """Caddy's executable, or skip (fail in CI) with the reason."""
    return need(CADDY, "caddy", "PRINTER_GATEWAY_REQUIRE_CADDY")


def recipe(site: str, upstream: str) -> str:
    """The shipped Caddyfile with its placeholder site name and upstream replaced; each
    must be there exactly once, so the test cannot drift from what people copy."""
    text = SHIPPED.read_text(encoding="utf-8")
    for old, new in ((f"\n{SITE} {{\n", f"\n{site} {{\n"), (f" {UPSTREAM}\n", f" {upstream}\n")):
        assert text.count(old) == 1, f"{SHIPPED} no longer has {old.strip()!r} exactly once"
        text = text.replace(old, new)
    return text


class Caddy:
    """``caddy run`` on the shipped recipe, serving ``localhost`` over HTTPS on a free port
    (and redirecting plain HTTP on another), its state in ``folder``."""

    def __init__(self, folder: Path, upstream: str) -> None:
        self.executable = need_caddy()
        self.http_port, self.https_port = free_port(), free_port()
        self.home = folder / "caddy-home"
        self.config = folder / "Caddyfile"
        self.config.write_text(
            GLOBAL_OPTIONS.format(http_port=self.http_port)
            + recipe(f"localhost:{self.https_port}", upstream),
            encoding="utf-8",
        )
        self.log_path = folder / "caddy.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def root_ca(self) -> Path:
        """The local CA's root certificate: what a client trusts to verify the site."""
        return self.home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> Caddy:
        self.home.mkdir()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(self.home / "data"),
            "XDG_CONFIG_HOME": str(self.home / "config"),
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.executable, "run", "--config", str(self.config), "--adapter", "caddyfile"],
                env=env,
                stdout=log,
                stderr=log,
            )
        try:
            wait_for(self._serving, 10, every_s=0.05, what="caddy to serve HTTPS")
        except AssertionError as err:
            self.kill()
            raise AssertionError(f"{err}\ncaddy's log:\n{self.log()}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def _serving(self) -> bool:
        """The CA exists and a verified HTTPS request gets any answer from the site."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"caddy exited with {self.process.returncode}:\n{self.log()}")
        if not self.root_ca.exists():
            return False
        try:
            requests.get(f"{self.url}/healthz", verify=str(self.root_ca), timeout=1)
        except requests.RequestException:
            return False
        return True
