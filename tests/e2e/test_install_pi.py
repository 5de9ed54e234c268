"""The Pi installer, run into a temporary root, in both modes, each followed by
`printer-gateway setup` through the installed `printer-gateway` wrapper, as an owner would:

* gateway only: no config of placeholders is written and nothing starts before setup; setup
  finds the simulator by discovery, takes the token at its prompt, refuses to start on a
  wrong token, starts (systemd, recorded by a stand-in `systemctl`) once the checks pass;
  an upgrade keeps the config, the token and the queue;
* gateway + web app: the web app's token is generated into a 0600 file, the web app runs from
  its unit's own command line, setup needs one answer, and the gateway it sets up pauses a
  print commanded through the web app's API. No process ever has the token in its argv or
  environment.

systemd itself cannot run here: `systemctl` is a script that records its arguments.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import requests

from console.demo import free_port
from tests.support.cli import discoverable_sim
from tests.support.http import ApiThread, answers
from tests.support.waiting import wait_for

# Each test installs a virtualenv (pip, from the local cache): minutes on a loaded machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "install-pi.sh"
API_TOKEN = "pi-token-123"


class Installed:
    """An install under `root`: its paths, and its `printer-gateway` run as an owner would
    (no PRINTER_GATEWAY_* in the environment; `systemctl` the recording stand-in)."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.etc = root / "etc" / "printer-gateway"
        self.data = root / "var" / "lib" / "printer-gateway"
        self.units = root / "etc" / "systemd" / "system"
        self.command = root / "usr" / "local" / "bin" / "printer-gateway"
        bin_dir = tmp / "fake-bin"
        bin_dir.mkdir(exist_ok=True)
        self.systemctl_log = tmp / "systemctl.log"
        stand_in = bin_dir / "systemctl"
        stand_in.write_text(f'#!/bin/sh\necho "$*" >> {self.systemctl_log}\n')
        stand_in.chmod(0o755)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PRINTER_GATEWAY")},
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        }

    def install(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), "--root", str(self.root), "--no-systemd", *args],
            capture_output=True,
            text=True,
            timeout=600,
            env={**self.env, "PYTHON": sys.executable},
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def run(self, *args: str, answers: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.command), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            input=answers,
            check=False,
        )

    def start(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(self.command), *args], env=self.env, text=True, start_new_session=True, **kwargs
        )

    def systemctl_calls(self) -> list[str]:
        return self.systemctl_log.read_text().splitlines() if self.systemctl_log.exists() else []


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Installed]:
    """An install root with a short path: the gateway's sockets live under it, and a unix
    socket's path must fit 107 bytes (pytest's own temporary paths can be too long)."""
    root = Path(tempfile.mkdtemp(prefix="pi-", dir="/tmp"))
    try:
        yield Installed(root, tmp_path)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def simulator(installed: Installed, *extra: str) -> AbstractContextManager[tuple[int, int]]:
    """The simulator, from the installed command, answering discovery: (tcp, udp) ports."""
    return discoverable_sim([str(installed.command), "sim", *extra], env=installed.env)


def assert_units_verify(*units: Path) -> None:
    """systemd's own offline check of the unit files (keys, paths, the command exists);
    skipped where systemd-analyze is not installed."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    checked = subprocess.run(
        [analyze, "verify", *map(str, units)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert "Unknown" not in checked.stderr, checked.stderr


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_gateway_only_then_setup_then_an_upgrade(installed: Installed, tmp_path: Path) -> None:
    first = installed.install()
    assert first.returncode == 0, first.stdout + first.stderr
    etc, data = installed.etc, installed.data
    assert (mode(etc), mode(data)) == ("0o750", "0o700")
    assert not (etc / "gateway.toml").exists()  # no config of placeholders, nothing started
    assert "next: sudo printer-gateway setup" in first.stdout
    assert installed.systemctl_calls() == []
    unit = (installed.units / "printer-gateway.service").read_text()
    assert f"ExecStart={installed.root}/opt/printer-gateway/venv/bin/printer-gateway up" in unit
    assert "RuntimeDirectoryMode=0700" in unit
    assert not (installed.units / "printer-gateway-api.service").exists()
    assert_units_verify(installed.units / "printer-gateway.service")

    with ApiThread(tmp_path / "api.db", token=API_TOKEN) as api, simulator(installed) as (tcp, udp):
        discover = ("--discover-to", f"127.0.0.1:{udp}", "--timeout", "2")
        wrong = installed.run("setup", *discover, answers=f"1\n{api.url}\nnot-the-token\n")
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr
        assert re.search(r"^ok +printer rex-ii-sim at 127\.0\.0\.1", wrong.stdout, re.M)
        assert re.search(r"^FAIL +API .*401", wrong.stdout, re.M)
        assert "Not started" in wrong.stdout
        assert installed.systemctl_calls() == []  # a failed check starts nothing
        assert "not-the-token" not in wrong.stdout + wrong.stderr

        right = installed.run("setup", *discover, answers=f"y\n1\n{api.url}\n{API_TOKEN}\n")
        assert right.returncode == 0, right.stdout + right.stderr
        assert "All checks passed" in right.stdout
        assert installed.systemctl_calls() == [
            "enable printer-gateway.service",
            "restart printer-gateway.service",
        ]
        assert API_TOKEN not in right.stdout + right.stderr
        assert _processes_showing(API_TOKEN) == []
    assert (mode(etc / "gateway.toml"), mode(etc / "token")) == ("0o640", "0o600")
    assert (etc / "token").read_text() == f"{API_TOKEN}\n"
    config = (etc / "gateway.toml").read_text()
    assert f'token_file = "{etc}/token"' in config
    assert f"port = {tcp}" in config
    assert API_TOKEN not in config

    checked = installed.run("check-config")  # the wrapper finds the installed config
    assert checked.returncode == 0, checked.stderr
    assert f'"data_dir": "{data}"' in checked.stdout
    assert API_TOKEN not in checked.stdout
    status = installed.run("status")
    assert status.returncode == 1
    assert "printer-gateway up" in status.stdout + status.stderr  # not running: said so

    (data / "uplink").mkdir()
    (data / "uplink" / "queue.db").write_bytes(b"queued records")
    with (etc / "gateway.toml").open("a") as file:
        file.write("# edited by the owner\n")
    second = installed.install()
    assert second.returncode == 0, second.stdout + second.stderr
    assert (data / "uplink" / "queue.db").read_bytes() == b"queued records"
    assert (etc / "gateway.toml").read_text().endswith("# edited by the owner\n")
    assert (etc / "token").read_text() == f"{API_TOKEN}\n"
    assert f"kept {etc}/gateway.toml" in second.stdout


def _exec_start(unit: Path) -> list[str]:
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def _processes_showing(secret: str) -> list[str]:
    """Every process whose argv or environment holds `secret` (we run as their user)."""
    showing = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                if secret.encode() in (entry / part).read_bytes():
                    showing.append(f"{entry.name}/{part}")
            except OSError:  # gone, or not ours to read
                continue
    return showing


def test_web_app_mode_sets_up_and_pauses_a_print_with_no_token_on_display(
    installed: Installed,
) -> None:
    port = free_port()
    done = installed.install("--with-web-app", "--web-app-listen", f"127.0.0.1:{port}")
    assert done.returncode == 0, done.stdout + done.stderr
    token_file = installed.etc / "web-app-token"
    assert mode(token_file) == "0o600"
    token = token_file.read_text().strip()
    assert len(token) >= 40
    assert f"the web app: http://127.0.0.1:{port}/" in done.stdout
    assert token not in done.stdout + done.stderr
    assert_units_verify(
        installed.units / "printer-gateway.service", installed.units / "printer-gateway-api.service"
    )

    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    with contextlib.ExitStack() as running:  # stopped in reverse: gateway, printer, web app
        web_app = subprocess.Popen(
            _exec_start(installed.units / "printer-gateway-api.service"),
            env=installed.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        running.callback(_stop, web_app, signal.SIGKILL, 10)
        printer = simulator(installed, "--print", "benchy.gx", "--print-duration", "600")
        _, udp = running.enter_context(printer)
        wait_for(lambda: answers(url), 20, what="the web app to answer")
        setup = installed.run(
            "setup", "--discover-to", f"127.0.0.1:{udp}", "--timeout", "2", answers="1\n"
        )
        assert setup.returncode == 0, setup.stdout + setup.stderr
        assert re.search(r"^ok +API http://127\.0\.0\.1:\d+: .*accepted", setup.stdout, re.M)
        assert f"The web app: http://127.0.0.1:{port}/ (on this machine" in setup.stdout
        assert f"sudo cat {token_file}" in setup.stdout
        config = (installed.etc / "gateway.toml").read_text()
        assert f'url = "http://127.0.0.1:{port}"' in config
        assert f'token_file = "{token_file}"' in config

        gateway = installed.start("up", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running.callback(_stop, gateway, signal.SIGTERM, 60)

        def printing() -> dict[str, Any] | None:
            rows = requests.get(f"{url}/v1/printers", headers=auth, timeout=5).json()["printers"]
            return next((r for r in rows if r["state"] == "printing"), None)

        row = wait_for(printing, 60, what="the printer printing in the web app")
        command = requests.post(
            f"{url}/v1/commands",
            json={"gateway_id": row["gateway_id"], "printer_id": "rex-ii-sim", "type": "pause"},
            headers=auth,
            timeout=5,
        )
        assert command.status_code == 201, command.text

        def outcome() -> str | None:
            answer = requests.get(
                f"{url}/v1/commands/{command.json()['id']}", headers=auth, timeout=5
            ).json()
            return answer.get("outcome") or None

        assert wait_for(outcome, 60, what="the pause's result") == "done"
        assert requests.get(f"{url}/v1/printers", timeout=5).status_code == 401
        assert _processes_showing(token) == []
    leftovers = [p for p in _processes_showing(str(installed.root)) if p.endswith("cmdline")]
    assert leftovers == []


def _stop(process: subprocess.Popen[Any], sig: int, within_s: float) -> None:
    """`sig` to the process's whole session (it was started in one of its own)."""
    os.killpg(process.pid, sig)
    process.wait(timeout=within_s)
