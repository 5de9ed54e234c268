"""The poller as a real process: SIGKILL mid-print and restart, SIGTERM release."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import msgspec
import pytest
import zmq.asyncio

from gateway.messages import Event, Record, json_encoder
from simulator import PrintJob, SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import ConfigFactory
from tests.support.poller import Collector, collecting
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


async def start_poller(config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        return await Cli(config).start_async(
            "run", "poller", stdout=asyncio.subprocess.DEVNULL, stderr=stderr
        )


def no_reused_ids(records: list[Record]) -> None:
    by_id: dict[str, bytes] = {}
    for record in records:
        encoded = json_encoder.encode(record)
        assert by_id.setdefault(record.id, encoded) == encoded, f"id {record.id} names two records"


@pytest.mark.parametrize("acking_at_kill", [True, False], ids=["acked", "unacked"])
def test_sigkill_mid_print_neither_repeats_nor_loses_an_event(
    sim: SimulatorThread,
    tmp_path: Path,
    acking_at_kill: bool,
    configs: ConfigFactory,
    zmq_context: zmq.asyncio.Context,
) -> None:
    log = tmp_path / "poller.log"

    async def body(collector: Collector, config: Path) -> None:
        first = await start_poller(config, log)
        await wait_until(lambda: "printer_online" in collector.events(), within_s=15)
        collector.acking = acking_at_kill
        sim.call(lambda: sim.sim.model.start_print(PrintJob(file="kill.gx", duration_s=3.0)))
        await wait_until(lambda: "print_started" in collector.events(), within_s=10)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        collector.acking = True
        second = await start_poller(config, log)
        await wait_until(lambda: "print_finished" in collector.events(), within_s=20)
        await asyncio.sleep(0.5)  # any late duplicate would arrive now
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 8) == 0

    async def main() -> Collector:
        path, config = configs.written({"rex1": sim.port})
        async with collecting(zmq_context, config) as collector:
            await body(collector, path)
        return collector

    collector = asyncio.run(main())
    assert collector.events() == ["printer_online", "print_started", "print_finished"], (
        log.read_text()
    )
    no_reused_ids(collector.received)
    started = [r for r in collector.received if isinstance(r, Event) and r.event == "print_started"]
    assert len({r.id for r in started}) == 1
    if not acking_at_kill:
        assert len(started) >= 2  # re-sent after the restart, under its original id
    journal = msgspec.json.decode((tmp_path / "data" / "poller" / "rex1.json").read_bytes())
    assert journal["pending"] == []
    assert journal["belief"]["job_phase"] == "none"


def test_sigterm_mid_print_exits_0_and_closes_the_printer_socket(
    sim: SimulatorThread, tmp_path: Path, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    log = tmp_path / "poller.log"
    sim.call(lambda: sim.sim.model.start_print(PrintJob(duration_s=600)))

    async def body(collector: Collector, config: Path) -> None:
        process = await start_poller(config, log)
        await wait_until(lambda: "print_started" in collector.events(), within_s=15)
        assert sim.open_connections() == 1
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 5) == 0
        await wait_until(lambda: sim.open_connections() == 0, within_s=2)

    async def main() -> None:
        path, config = configs.written({"rex1": sim.port})
        async with collecting(zmq_context, config) as collector:
            await body(collector, path)

    asyncio.run(main())
    assert "poller stopped" in log.read_text()


def test_unknown_printer_id_is_a_config_error(
    configs: ConfigFactory, sim: SimulatorThread, cli: Cli
) -> None:
    config = configs.write({"rex1": sim.port})
    result = cli.on(config).run("run", "poller", "--printer", "nope")
    assert result.returncode == 2
    assert "printers" in result.stderr
    assert "nope" in result.stderr


def test_printer_option_without_the_poller_is_refused(
    configs: ConfigFactory, sim: SimulatorThread, cli: Cli
) -> None:
    config = configs.write({"rex1": sim.port})
    result = cli.on(config).run("run", "uplink", "control", "--printer", "rex1")
    assert result.returncode == 2
    assert "--printer is for the poller" in result.stderr
