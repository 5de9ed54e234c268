"""Printer simulator -> poller process -> uplink process -> reference API, and the tap."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import msgspec
import pytest

from simulator import PrintJob, SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import FAST_PRINTER, ConfigFactory
from tests.support.http import TOKEN, ApiThread, Script, scripted_api
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def test_a_print_reaches_the_api_in_seq_order_and_shows_on_the_tap(
    sim: SimulatorThread, tmp_path: Path, configs: ConfigFactory, cli: Cli
) -> None:
    hooks = Script()
    with ApiThread(tmp_path / "api.db") as api, scripted_api(hooks) as hook_url:
        config = configs.write(
            {"rex1": {**FAST_PRINTER, "name": "REX #1", "port": sim.port}},
            api_url=api.url,
            token=TOKEN,
            notify={"urls": [f"json://{hook_url.removeprefix('http://')}/hook"]},
        )
        log = (tmp_path / "services.log").open("ab")
        services = [
            cli.on(config).start("run", name, stdout=subprocess.DEVNULL, stderr=log)
            for name in ("uplink", "poller")
        ]
        tap = cli.on(config).start(
            "tap",
            "--json",
            "--count",
            "5",
            stdout=subprocess.PIPE,
            stderr=log,
        )

        def events() -> list[str]:
            records = api.get(
                "/v1/records", gateway_id="gw", printer_id="rex1", kind="event"
            ).json()["records"]
            return [r["event"] for r in records]

        try:
            wait_for(lambda: events() == ["printer_online"], 20, every_s=0.02)
            sim.call(lambda: sim.sim.model.start_print(PrintJob(file="chain.gx", duration_s=1.5)))
            wait_for(lambda: "print_finished" in events(), 30, every_s=0.02)
            tapped, _ = tap.communicate(timeout=20)
        finally:
            for process in services:
                process.send_signal(signal.SIGTERM)
            codes = [process.wait(timeout=15) for process in services]
            tap.kill()
            tap.wait()
            log.close()
        records = api.get("/v1/records", gateway_id="gw", printer_id="rex1", limit=10_000).json()[
            "records"
        ]
    assert codes == [0, 0]
    assert [r["event"] for r in records if r["kind"] == "event"] == [
        "printer_online",
        "print_started",
        "print_finished",
    ]
    reliable = [r["seq"] for r in records if r["kind"] != "status"]
    assert reliable == list(range(1, len(reliable) + 1))
    assert all(r["seq"] is None for r in records if r["kind"] == "status")  # the live lane
    printing = [r for r in records if r["kind"] == "status" and r["state"] == "printing"]
    assert printing
    assert printing[0]["printer"]["name"] == "REX #1"
    assert printing[0]["printer"]["model"] == "FlashForge Adventurer III"
    assert printing[0]["file"] == "chain.gx"
    titles = sorted(msgspec.json.decode(body)["title"] for _, body in hooks.requests)
    assert titles == ["REX #1: print finished", "REX #1: print started"]  # each event once
    lines = [msgspec.json.decode(line) for line in tapped.splitlines()]
    assert len(lines) == 5
    assert all(line["printer_id"] == "rex1" for line in lines)
