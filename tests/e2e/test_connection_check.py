"""`check-config --connect` (issue 15): the printer up, refused, hanging and held by another
client; the reference API with the right and a wrong token; a closed port; the broker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from console.demo import free_port
from gateway.config import load_config
from gateway.health import PrinterHealth, write_printer
from gateway.layout import Layout
from gateway.locks import hold
from simulator import SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import ConfigFactory
from tests.support.http import TOKEN, ApiThread
from tests.support.mosquitto import Broker

pytestmark = pytest.mark.e2e


def check(config: Path) -> tuple[int, str]:
    result = Cli(config).run("check-config", "--connect", "--timeout", "1")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def line(output: str, what: str) -> str:
    return next(row for row in output.splitlines() if what in row)


def test_a_printer_up_refused_hanging_and_held(
    sim: SimulatorThread, tmp_path: Path, configs: ConfigFactory
) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        config = configs.write({"rex1": sim.port}, api_url=api.url, token=TOKEN)
        code, out = check(config)
        assert code == 0, out
        assert line(out, "printer rex1").startswith("ok")
        assert "ready" in line(out, "printer rex1")
        assert line(out, "API").startswith("ok")
        assert not any(text.startswith("~M601") for text in _sent(sim))  # read-only

        sim.set_faults(foreign_poll_hz=4.0)  # another client polls: still fine, and said
        code, out = check(config)
        assert "another client is polling it" in line(out, "printer rex1")
        sim.set_faults(foreign_poll_hz=0.0)

        sim.set_faults(one_connection=True)
        code, out = check(config)
        assert code == 1
        assert "another client" in line(out, "printer rex1")
        assert line(out, "printer rex1").startswith("FAIL")
        sim.set_faults(one_connection=False)

        sim.power_off()  # connects time out
        code, out = check(config)
        assert code == 1
        assert "no answer" in line(out, "printer rex1")
        assert "discover" in line(out, "printer rex1")
        sim.power_on()

        sim.power_off(refuse=True)
        code, out = check(config)
        assert "connection refused" in line(out, "printer rex1")
        sim.power_on()


def _sent(sim: SimulatorThread) -> list[str]:
    return [e.text for e in sim.wire() if e.what == "in"]


def test_while_the_gateway_runs_its_printers_are_read_from_the_poller_not_connected_to(
    sim: SimulatorThread, tmp_path: Path, configs: ConfigFactory
) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        config = configs.write({"rex1": sim.port, "rex2": sim.port}, api_url=api.url, token=TOKEN)
        layout = Layout.of(load_config(config))
        write_printer(layout, PrinterHealth("rex1", "printing", True, "2026-01-02T10:00:00Z"))
        for lock, running in (
            (layout.gateway_lock, "the gateway is running"),  # `up`: its supervisord holds it
            (layout.service_lock("poller"), "this gateway's poller service is running"),
        ):
            held = hold(lock, "the test")  # this process: the check runs in a child
            try:
                code, out = check(config)
            finally:
                os.close(held)
            assert sim.connection_attempts() == 0, out  # the poller's connection, not ours
            rex1 = line(out, "printer rex1")
            assert rex1.startswith("ok"), out
            assert f"{running} (pid {os.getpid()}): " in rex1
            last_look = "state from its last look: printing, last contact 2026-01-02T10:00:00Z"
            assert f"holds the connection; {last_look}" in rex1
            rex2 = line(out, "printer rex2")  # no health file yet: said, and not called fine
            assert rex2.startswith("FAIL"), out
            assert "has not reported this printer yet" in rex2
            assert line(out, "API").startswith("ok"), out  # the API is still checked
            assert code == 1
        code, out = check(config)  # the gateway gone: the printers are probed again
        assert code == 0, out
        assert "ready" in line(out, "printer rex1")
        assert sim.connection_attempts() > 0


def test_the_api_with_a_wrong_token_and_a_closed_port(
    sim: SimulatorThread, tmp_path: Path, configs: ConfigFactory
) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        config = configs.write({"rex1": sim.port}, api_url=api.url, token="not-the-token")
        code, out = check(config)
        assert code == 1
        assert "HTTP 401: the API refuses the token" in line(out, "API")
        assert "not-the-token" not in out
    config = configs.write(
        {"rex1": sim.port},
        api_url=f"http://127.0.0.1:{free_port()}",  # closed again: nobody listens, token=TOKEN
    )
    code, out = check(config)
    assert code == 1
    assert "connection refused" in line(out, "API")


def test_the_broker_when_configured(
    sim: SimulatorThread, tmp_path: Path, configs: ConfigFactory, broker: Broker
) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        config = configs.write(
            {"rex1": sim.port}, api_url=api.url, token=TOKEN, mqtt={"url": broker.url}
        )
        code, out = check(config)
        assert code == 0, out
        assert line(out, "MQTT broker").startswith("ok")
        broker.kill()
        code, out = check(config)
        assert code == 1
        assert "no broker listens" in line(out, "MQTT broker")
