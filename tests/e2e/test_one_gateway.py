"""One gateway per data directory (issue 15): `up | tee` interrupted leaves no process behind,
a second `up` refuses, a second service of one name refuses, and `status` says a printer is
unreachable instead of calling the gateway healthy."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.layout import Layout
from gateway.locks import hold, holder
from simulator import SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import ConfigFactory
from tests.support.http import TOKEN, ApiThread
from tests.support.processes import status, supervised, supervised_pid
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def _ours(marker: str) -> list[int]:
    """Processes whose command line mentions `marker` (the config's path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            found.append(int(entry.name))
    return found


def test_up_behind_a_pipe_interrupted_leaves_nothing_and_a_second_up_refuses(
    sim: SimulatorThread, tmp_path: Path, configs: ConfigFactory
) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        config = configs.write({"rex1": sim.port}, api_url=api.url, token=TOKEN)
        runtime = tmp_path / "run"
        piped = subprocess.Popen(  # what an owner types: up, its output through tee
            [
                "sh",
                "-c",
                f"{shlex.join(Cli(config).argv('up'))} 2>&1 | tee {shlex.quote(str(tmp_path / 'up.log'))}",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for(lambda: supervised_pid(runtime, "uplink"), 30)
            wait_for(lambda: supervised_pid(runtime, "poller"), 30)
            second = Cli(config).run("up")
            assert second.returncode == 2
            assert "already running" in second.stderr
            assert "printer-gateway: watching rex1" in (tmp_path / "up.log").read_text()
            assert "CRIT" not in (tmp_path / "up.log").read_text()  # supervisord's noise: its log
            os.killpg(piped.pid, signal.SIGINT)  # Ctrl-C: the whole pipeline gets it
            piped.wait(30)
            wait_for(lambda: not _ours(str(config)), 30, what="every gateway process gone")
        finally:
            if _ours(str(config)):
                os.killpg(piped.pid, signal.SIGKILL)
        third = Cli(config).start("up", stdout=subprocess.DEVNULL, start_new_session=True)
        try:  # the lock went with the gateway: the next up runs
            wait_for(lambda: supervised_pid(runtime, "uplink"), 30)
        finally:
            third.send_signal(signal.SIGTERM)
            assert third.wait(40) == 0


def test_a_second_service_of_one_name_refuses_to_start(
    sim: SimulatorThread, configs: ConfigFactory
) -> None:
    config = configs.write({"rex1": sim.port})
    cli = Cli(config)
    first = cli.start("run", "poller", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: sim.open_connections() or sim.wire(), 20)
        second = cli.run("run", "poller")
        assert second.returncode == 3
        assert "the poller service is already running" in second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(20) == 0


def test_status_calls_a_service_running_without_supervisord_an_orphan(
    sim: SimulatorThread, configs: ConfigFactory
) -> None:
    config = configs.write({"rex1": sim.port})
    layout = Layout.of(load_config(config))
    orphan = Cli(config).start(
        "run", "poller", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: holder(layout.service_lock("poller")), 20, what="the poller's lock")
        result = Cli(config).run("status")
        assert result.returncode == 1
        said = f"poller (pid {orphan.pid}) runs without supervisord: an orphan; stop it with `kill {orphan.pid}`"
        assert said in result.stdout
        code, report = status(config)
        assert code == 1
        assert said in report["problems"]
        assert report["orphans"] == [{"pid": orphan.pid, "services": ["poller"]}]
        held = hold(layout.gateway_lock, "a gateway")  # supervisord there, slow to answer:
        try:  # its services are not orphans
            code, report = status(config)
            assert report["orphans"] == []
            assert not any("orphan" in p for p in report["problems"])
        finally:
            os.close(held)
    finally:
        orphan.send_signal(signal.SIGTERM)
        assert orphan.wait(20) == 0
    code, report = status(config)  # gone: the lock file stays, nobody holds it
    assert layout.service_lock("poller").exists()
    assert report["orphans"] == []
    assert not any("orphan" in p for p in report["problems"])


def test_status_says_a_printer_is_unreachable(
    sim: SimulatorThread, tmp_path: Path, configs: ConfigFactory
) -> None:
    sim.power_off()  # connects time out, as for a printer switched off
    with ApiThread(tmp_path / "api.db") as api:
        config = configs.write(
            {"rex1": {"port": sim.port, "probe_interval_s": 0.5}}, api_url=api.url, token=TOKEN
        )
        with supervised(config, tmp_path / "run"):

            def unreachable() -> tuple[int, dict[str, Any]] | None:
                code, report = status(config)
                said = any("unreachable" in p for p in report["problems"])
                return (code, report) if said else None

            code, report = wait_for(unreachable, 60, what="status to say it is unreachable")
            assert code == 1
            problem = next(p for p in report["problems"] if "unreachable" in p)
            assert f"127.0.0.1:{sim.port}" in problem
            assert "discover" in problem
