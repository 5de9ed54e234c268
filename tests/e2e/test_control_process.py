"""Control end to end: simulator, reference API and all three services as real processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.config import load_config
from gateway.health import read_problems
from gateway.layout import Layout
from simulator import PrintJob, SimulatorThread
from tests.support.http import ApiThread, Script, scripted_api
from tests.support.processes import Gateway, running
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def queue(api: ApiThread, command_type: str, **params: object) -> str:
    response = api.post(
        "/v1/commands",
        {"gateway_id": "gw", "printer_id": "rex1", "type": command_type, "params": params},
    )
    assert response.status_code == 201
    return str(response.json()["id"])


def result(api: ApiThread, command_id: str) -> tuple[str, str]:
    def done() -> dict[str, Any] | None:
        command = api.get(f"/v1/commands/{command_id}").json()
        return command if command.get("outcome") else None

    command = wait_for(done, 30, every_s=0.05)
    return command["outcome"], command["detail"]


def results_for(api: ApiThread, command_id: str) -> list[dict[str, Any]]:
    records = api.get("/v1/records", gateway_id="gw", kind="command_result", limit=10_000).json()[
        "records"
    ]
    return [r for r in records if r["command_id"] == command_id]


def sent(sim: SimulatorThread, code: str) -> int:
    return sum(
        1 for entry in sim.wire() if entry.what == "in" and entry.text.split()[0] == f"~{code}"
    )


def test_pause_resume_cancel_and_rejections(sim: SimulatorThread, tmp_path: Path) -> None:
    with running(tmp_path, sim) as (api, _):
        assert result(api, queue(api, "pause"))[0] == "rejected"  # idle: nothing to pause
        hot = queue(api, "set_nozzle_temperature", celsius=400)
        outcome, detail = result(api, hot)
        assert outcome == "rejected"
        assert "400" in detail
        assert result(api, queue(api, "explode"))[0] == "rejected"
        sim.call(lambda: sim.sim.model.start_print(PrintJob(duration_s=600)))
        wait_for(
            lambda: (
                api.get("/v1/printers", gateway_id="gw").json()["printers"][0]["state"]
                == "printing"
            ),
            20,
            every_s=0.05,
        )
        began = time.monotonic()
        pause = queue(api, "pause")
        assert result(api, pause) == ("done", "M25 sent under control; effect verified")
        assert time.monotonic() - began < 5
        assert sim.truth()["status"] == "PAUSED"
        assert result(api, queue(api, "resume"))[0] == "done"
        assert result(api, queue(api, "set_bed_temperature", celsius=55))[0] == "done"
        assert result(api, queue(api, "cancel"))[0] == "done"
        assert sim.truth()["status"] == "READY"
        time.sleep(1.0)  # the API kept listing each command until its result arrived
        assert len(results_for(api, pause)) == 1
    assert sent(sim, "M104") == 0  # the 400 °C command never reached the wire
    assert sent(sim, "M25") == sent(sim, "M24") == sent(sim, "M26") == 1
    assert sent(sim, "M601") == sent(sim, "M602") == 4


def test_sigkill_of_control_and_poller_mid_command_executes_once(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(duration_s=600)))
    with running(tmp_path, sim) as (api, gateway):
        wait_for(
            lambda: api.get("/v1/printers", gateway_id="gw").json()["printers"], 20, every_s=0.05
        )
        sim.set_faults(reply_delay_s=0.5)  # slow printer: the kills land mid-command
        pause = queue(api, "pause")
        wait_for(lambda: sent(sim, "M601") >= 1, 20, every_s=0.05)
        gateway.kill("control")
        gateway.kill("poller")
        sim.set_faults(reply_delay_s=0.0)
        gateway.start("poller")
        gateway.start("control")
        outcome, detail = result(api, pause)
        time.sleep(1.0)
        assert len(results_for(api, pause)) == 1
        assert results_for(api, pause)[0]["command_type"] == "pause"  # from control's ledger
    assert sent(sim, "M25") == 1  # executed exactly once, by whichever poller got to it
    assert (outcome, sim.truth()["status"]) == ("done", "PAUSED"), detail


def test_uplink_and_control_in_one_process_as_supervisord_runs_them(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    """The bundled conf's `run uplink control`: two services, one pid, one fate; a SIGKILL
    mid-command loses nothing and runs it once; SIGTERM stops both cleanly and promptly."""
    sim.call(lambda: sim.sim.model.start_print(PrintJob(duration_s=600)))
    with ApiThread(tmp_path / "api.db") as api:
        gateway = Gateway(tmp_path, api.url, sim)
        gateway.start("uplink", "control")
        gateway.start("poller")
        try:
            layout = Layout.of(load_config(gateway.config))
            boards = wait_for(
                lambda: (
                    {b.service: b.pid for b in read_problems(layout)}
                    if len(read_problems(layout)) == 3
                    else None
                )
            )
            assert boards["uplink"] == boards["control"] == gateway.processes["uplink"].pid
            sim.set_faults(reply_delay_s=0.5)  # slow printer: the kill lands mid-command
            pause = queue(api, "pause")
            wait_for(lambda: sent(sim, "M601") >= 1, 20, every_s=0.05)
            gateway.kill("uplink")
            sim.set_faults(reply_delay_s=0.0)
            gateway.start("uplink", "control")
            outcome, detail = result(api, pause)
            time.sleep(1.5)  # control is inside a long poll again
            assert len(results_for(api, pause)) == 1
            process = gateway.processes.pop("uplink")
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert time.monotonic() - began < 5
        finally:
            gateway.stop_all()
    assert sent(sim, "M25") == 1
    assert (outcome, sim.truth()["status"]) == ("done", "PAUSED"), detail


def test_command_expires_while_the_poller_is_down(sim: SimulatorThread, tmp_path: Path) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(duration_s=600)))
    with running(tmp_path, sim, ttl_s=2) as (api, gateway):
        wait_for(
            lambda: api.get("/v1/printers", gateway_id="gw").json()["printers"], 20, every_s=0.05
        )
        gateway.kill("poller")
        pause = queue(api, "pause")
        time.sleep(3.5)
        ts = api.get("/v1/printers", gateway_id="gw").json()["printers"][0]["ts"]
        gateway.start("poller")
        outcome, detail = result(api, pause)
        wait_for(  # a newer status (RFC 3339 UTC texts of one format compare as times)
            lambda: api.get("/v1/printers", gateway_id="gw").json()["printers"][0]["ts"] > ts,
            20,
            every_s=0.05,
        )
    assert outcome == "expired"
    assert "not executed" in detail
    assert sent(sim, "M25") == 0


def test_control_exits_promptly_on_sigterm_mid_long_poll(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    with running(tmp_path, sim) as (_, gateway):
        time.sleep(1.5)  # control is inside a 25 s long poll now
        process = gateway.processes.pop("control")
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - began < 5


def test_legacy_418_pauses_the_print_once(sim: SimulatorThread, tmp_path: Path) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(duration_s=600)))
    script = Script(answers=[(418, {})])  # the legacy web app wants this printer paused
    with scripted_api(script) as url:
        gateway = Gateway(tmp_path, url + "/printer", sim, flavor="legacy")
        for name in ("uplink", "poller", "control"):
            gateway.start(name)
        try:
            wait_for(lambda: sim.truth()["status"] == "PAUSED", 30, every_s=0.05)
            count = len(script.requests)
            wait_for(
                lambda: len(script.requests) > count + 5, 20, every_s=0.05
            )  # 418s keep coming while paused
        finally:
            codes = gateway.stop_all()
    assert codes == [0, 0, 0]
    assert sent(sim, "M25") == 1
    statuses = [msgspec.json.decode(body)["printer_status"] for _, body in script.requests]
    assert "paused" in statuses
