"""Deployment: `up` under supervisord with SIGKILLs, `status`, and the headless demo."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from console.deploy import supervisor_call
from gateway.layout import Layout
from simulator import PrintJob, SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import ConfigFactory
from tests.support.http import TOKEN, ApiThread
from tests.support.processes import status, supervised, supervised_pid
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def test_up_restarts_killed_services_loses_nothing_and_status_tells(
    sim: SimulatorThread, tmp_path: Path, configs: ConfigFactory
) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(duration_s=600)))
    runtime = tmp_path / "run"
    with ApiThread(tmp_path / "api.db") as api:
        config = configs.write(
            {"rex1": {"port": sim.port, "poll_interval_s": 0.2}}, api_url=api.url, token=TOKEN
        )
        with supervised(config, runtime):
            wait_for(lambda: api.get("/v1/printers", gateway_id="gw").json()["printers"])
            code, report = status(config)
            assert code == 0, report
            wait_for(lambda: len(status(config)[1]["services"][1]["services"]) == 4)
            code, report = status(config)
            assert {s["name"]: s["services"] for s in report["services"]} == {
                "poller": ["poller"],
                "uplink": ["bridge", "control", "metrics", "uplink"],  # one process, four services
            }
            assert report["printers"][0]["lease_held"] is True
            for name in ("uplink", "poller"):
                pid = supervised_pid(runtime, name)
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                wait_for(
                    lambda name=name, pid=pid: supervised_pid(runtime, name) not in (None, pid)  # type: ignore[misc]
                )
            code, report = status(config)
            assert code == 0
            assert {s["name"]: s["restarts"] for s in report["services"]} == {
                "poller": 1,
                "uplink": 1,
            }
            supervisor_call(Layout(runtime.parent / "data", runtime), "stopProcess", "uplink")
            code, report = status(config)
            assert code == 1
            assert "service uplink is STOPPED" in report["problems"]
            supervisor_call(Layout(runtime.parent / "data", runtime), "startProcess", "uplink")
            before = len(api.get("/v1/records", gateway_id="gw", limit=10000).json()["records"])
            wait_for(
                lambda: (
                    len(api.get("/v1/records", gateway_id="gw", limit=10000).json()["records"])
                    > before + 5
                )
            )
        records = api.get("/v1/records", gateway_id="gw", printer_id="rex1", limit=10000).json()[
            "records"
        ]
    seqs = [r["seq"] for r in records if r["kind"] != "status"]  # the reliable lane
    assert seqs == list(range(1, len(seqs) + 1))  # nothing acknowledged was lost across the kills
    assert all(r["seq"] is None for r in records if r["kind"] == "status")  # the live lane
    assert [r["event"] for r in records if r["kind"] == "event"] == [
        "printer_online",
        "print_started",
    ]
    wait_for(lambda: sim.open_connections() == 0, within_s=5)  # the printer was released


def test_status_without_supervisord_is_unhealthy(configs: ConfigFactory, cli: Cli) -> None:
    config = configs.write({"printer1": {"host": "h"}}, gateway_id=None, token=None)
    code, report = status(config)
    assert code == 1
    assert "supervisord not reachable" in report["problems"][0]
    human = cli.on(config).run("status")
    assert "UNHEALTHY" in human.stdout


def test_make_demo_runs_headless_and_delivers_records() -> None:
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".venv" / ".installed").exists():
        pytest.skip("`make demo` wants the project's .venv (made by `make test`)")
    result = subprocess.run(
        ["make", "-s", "-C", str(repo), "demo", "DEMO_ARGS=--duration 12 --print-duration 5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    delivered = int(result.stdout.strip().splitlines()[-1].split(":")[1])
    assert delivered > 3
