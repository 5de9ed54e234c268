"""The poller as a real process: SIGKILL mid-print and restart, SIGTERM release."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
import zmq.asyncio

from gateway.messages import Event, Record, json_encoder
from simulator import PrintJob, SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import ConfigFactory, written_config
from tests.support.poller import Collector
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


async def collecting(
    ctx: zmq.asyncio.Context, tmp_path: Path, port: int, body: Callable[[Collector, Path], object]
) -> Collector:
    path, config = written_config(tmp_path, {"rex1": port})
    collector = Collector(ctx, config)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    try:
        await body(collector, path)  # type: ignore[misc]
    finally:
        stop.set()
        await task
        collector.close()
    return collector


@pytest.mark.parametrize("acking_at_kill", [True, False], ids=["acked", "unacked"])
def test_sigkill_mid_print_neither_repeats_nor_loses_an_event(
    sim: SimulatorThread, tmp_path: Path, acking_at_kill: bool
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
        ctx = zmq.asyncio.Context()
        try:
            return await collecting(ctx, tmp_path, sim.port, body)
        finally:
            ctx.term()

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
    sim: SimulatorThread, tmp_path: Path
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
        ctx = zmq.asyncio.Context()
        try:
            await collecting(ctx, tmp_path, sim.port, body)
        finally:
            ctx.term()

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
