"""Programs from Debian the tests drive for real (chromium, mosquitto, caddy): found, or
the test skipped saying why; where CI installs them (``.ci/run``) it sets
``PRINTER_GATEWAY_REQUIRE_<NAME>=1``, and a missing program fails instead of skipping."""

from __future__ import annotations

import os
import shutil

import pytest


def need(path: str | None, name: str, require: str) -> str:
    """`path` (the program as found here); else skip, or fail where $`require` is 1."""
    if path is None:
        if os.environ.get(require) == "1":
            pytest.fail(f"{name} is required here ({require}=1)")
        pytest.skip(f"no {name} here (CI installs it: apt-get install {name})")
    return path


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Headless on a machine with no network beyond loopback: without the background-networking
# switches Chromium keeps calling out (refused here) at every start.
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
