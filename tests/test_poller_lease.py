"""The poller against the simulator over real TCP, with a real ZeroMQ receiver."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest
import zmq.asyncio

from gateway.bus import Execute, request_command
from gateway.commands import Action, Answer, Pause, SetNozzleTemperature
from gateway.config import Config
from gateway.layout import Layout
from services.poller.service import Poller
from simulator import PrinterModel, PrinterSimulator, PrintJob, SimulatorThread, WireEntry
from tests.support.configs import ConfigFactory
from tests.support.poller import Collector, running_poller
from tests.support.waiting import wait_until


def start_print(sim: SimulatorThread, duration_s: float = 60.0, file: str = "benchy.gx") -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(file=file, duration_s=duration_s)))


def sessions(wire: list[WireEntry]) -> list[tuple[float, float, list[str]]]:
    """(opened, closed, requests) per connection, from the simulator's wire log."""
    opened: dict[int, float] = {}
    requests: dict[int, list[str]] = {}
    result = []
    for entry in wire:
        if entry.what == "open":
            opened[entry.conn], requests[entry.conn] = entry.t, []
        elif entry.what == "in":
            requests[entry.conn].append(entry.text)
        elif entry.what == "close":
            result.append((opened[entry.conn], entry.t, requests[entry.conn]))
    return result


async def command(
    ctx: zmq.asyncio.Context, poller: Poller, printer_id: str, command_id: str, action: Action
) -> tuple[str, str]:
    reply = await request_command(
        ctx,
        poller.layout.poller_endpoint(printer_id),
        Execute(command_id, action),
        timeout_s=10,
        attempts=1,
    )
    assert reply.answer is not None
    return reply.answer.outcome, reply.answer.detail


def test_idle_probes_are_short_read_only_and_leave_nothing_open(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> None:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (_, collector):
            await wait_until(lambda: len(collector.statuses()) >= 4)
            assert {s.state for s in collector.statuses()} == {"idle"}
            await wait_until(lambda: sim.open_connections() == 0)

    asyncio.run(scenario())
    probes = sessions(sim.wire())
    assert len(probes) >= 4
    assert all(requests == ["~M115", "~M119", "~M105", "~M27"] for _, _, requests in probes)
    holds = sorted(closed - opened for opened, closed, _ in probes)
    assert holds[int(len(holds) * 0.95) - 1] < 0.5  # p95 hold on loopback, far under the 1 s target
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(probes)]
    assert min(gaps) > 0.1  # closed between probes: nothing stays open while idle


def test_full_print_keeps_one_connection_and_emits_each_event_once(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> Collector:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (_, collector):
            await wait_until(lambda: collector.events() == ["printer_online"])
            start_print(sim, duration_s=1.5)
            await wait_until(lambda: "print_finished" in collector.events())
            await wait_until(lambda: collector.statuses()[-1].state == "idle")
            return collector

    collector = asyncio.run(scenario())
    assert collector.events() == ["printer_online", "print_started", "print_finished"]
    printing = [s for s in collector.statuses() if s.state == "printing"]
    assert printing
    assert printing[0].file == "benchy.gx"
    assert printing[-1].progress_percent is not None
    assert printing[-1].nozzle is not None
    assert printing[-1].nozzle.target == 210
    assert [s.progress_percent for s in printing] == sorted(
        s.progress_percent or 0 for s in printing
    )
    # One connection carried the whole print: the session that saw the first M27 of the print
    # lasted until after completion.
    long_sessions = [s for s in sessions(sim.wire()) if len(s[2]) > 10]
    assert len(long_sessions) == 1
    assert "~M601 S1" not in long_sessions[0][2]  # read-only polling takes no control


def data_files(config: Config) -> dict[str, int]:
    """Every file under data_dir with its mtime."""
    files = Path(config.gateway.data_dir).rglob("*")
    return {path.name: path.stat().st_mtime_ns for path in files if path.is_file()}


def test_a_print_without_events_writes_nothing_to_data_dir(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    """Statuses every 0.2 s for two seconds: the journal (the poller's only file under
    data_dir) is not touched between events; per-poll files live in runtime_dir only."""
    config = configs.make({"rex1": sim.port})
    journal = Layout.of(config).journal("rex1")

    async def scenario() -> None:
        async with running_poller(zmq_context, config) as (_, collector):
            start_print(sim, duration_s=60)
            await wait_until(lambda: "print_started" in collector.events())
            await asyncio.sleep(0.5)  # the ack of print_started is written at the next cycle
            before = data_files(config)
            assert journal.name in before
            count = len(collector.statuses())
            await asyncio.sleep(2.0)
            assert len(collector.statuses()) >= count + 5  # it kept polling
            assert data_files(config) == before  # the same files, none rewritten

    asyncio.run(scenario())


@pytest.mark.parametrize("style", ["machine_status", "move_mode"])
def test_pause_and_resume_in_both_forms(
    sim: SimulatorThread, configs: ConfigFactory, style: str, zmq_context: zmq.asyncio.Context
) -> None:
    sim.call(lambda: setattr(sim.sim.model, "pause_style", style))

    async def scenario() -> Collector:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (_, collector):
            start_print(sim)
            await wait_until(lambda: "print_started" in collector.events())
            sim.call(sim.sim.model.pause)
            await wait_until(lambda: "print_paused" in collector.events())
            paused_at = len(collector.statuses())
            await wait_until(lambda: len(collector.statuses()) >= paused_at + 3)  # still polled
            sim.call(sim.sim.model.resume)
            await wait_until(lambda: "print_resumed" in collector.events())
            return collector

    collector = asyncio.run(scenario())
    assert collector.events() == [
        "printer_online",
        "print_started",
        "print_paused",
        "print_resumed",
    ]
    assert "paused" in {s.state for s in collector.statuses()}


def test_cancel_is_not_finish(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> Collector:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (_, collector):
            start_print(sim, duration_s=30)
            await wait_until(lambda: "print_started" in collector.events())
            sim.call(sim.sim.model.cancel)
            await wait_until(lambda: "print_cancelled" in collector.events())
            return collector

    collector = asyncio.run(scenario())
    assert collector.events() == ["printer_online", "print_started", "print_cancelled"]


def test_commands_pause_rejected_when_idle_out_of_limits_and_once_per_id(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> list[tuple[str, str]]:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (
            poller,
            collector,
        ):
            await wait_until(lambda: bool(collector.statuses()))
            results = [
                await command(zmq_context, poller, "rex1", "c-idle", Pause()),
                await command(zmq_context, poller, "rex1", "c-hot", SetNozzleTemperature(400)),
            ]
            start_print(sim)
            await wait_until(lambda: "print_started" in collector.events())
            results.append(await command(zmq_context, poller, "rex1", "c-pause", Pause()))
            # the same id again:
            results.append(await command(zmq_context, poller, "rex1", "c-pause", Pause()))
            await wait_until(lambda: "print_paused" in collector.events())
            return results

    results = asyncio.run(scenario())
    assert results[0][0] == "rejected"
    assert "nothing to pause" in results[0][1]
    assert results[1][0] == "rejected"
    assert results[2] == results[3]
    assert results[2][0] == "done"
    sent = [e.text for e in sim.wire() if e.what == "in"]
    assert sent.count("~M25") == 1
    assert not any(text.startswith("~M104") for text in sent)
    assert sent.count("~M601 S1") == sent.count("~M602") == 1


def test_foreign_controller_bare_command_fails_honestly(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    sim.call(lambda: setattr(sim.sim.model, "foreign_control", True))

    async def scenario() -> tuple[str, str]:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (
            poller,
            collector,
        ):
            start_print(sim)
            await wait_until(lambda: "print_started" in collector.events())
            return await command(zmq_context, poller, "rex1", "c1", Pause())

    outcome, detail = asyncio.run(scenario())
    assert outcome == "failed"
    assert "control refused" in detail
    sent = [e.text for e in sim.wire() if e.what == "in"]
    assert "~M602" not in sent  # control was never granted, so nothing to release


@pytest.mark.parametrize(
    "faults",
    [{"garbage_lines": True}, {"split_bytes": True}, {"cross_talk": True}],
    ids=["garbage", "split", "cross-talk"],
)
def test_link_faults_do_not_change_what_is_reported(
    sim: SimulatorThread,
    configs: ConfigFactory,
    faults: dict[str, bool],
    zmq_context: zmq.asyncio.Context,
) -> None:
    sim.set_faults(**faults)

    async def scenario() -> Collector:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (_, collector):
            start_print(sim, duration_s=2)
            await wait_until(lambda: "print_finished" in collector.events(), within_s=20)
            return collector

    collector = asyncio.run(scenario())
    assert collector.events() == ["printer_online", "print_started", "print_finished"]
    assert all(s.state in ("idle", "printing", "completed") for s in collector.statuses())


def test_dropped_connections_reconnect_without_going_offline(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> Collector:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (_, collector):
            start_print(sim)
            await wait_until(lambda: "print_started" in collector.events())
            closes = sum(1 for e in sim.wire() if e.what == "close")
            sim.set_faults(drop="mid_reply")  # the next reply is cut in half, once
            await wait_until(lambda: sum(1 for e in sim.wire() if e.what == "close") > closes)
            sim.set_faults(drop="never")
            count = len(collector.statuses())
            await wait_until(lambda: len(collector.statuses()) > count + 3)
            return collector

    collector = asyncio.run(scenario())
    assert collector.events() == ["printer_online", "print_started"]
    assert len([s for s in sessions(sim.wire()) if len(s[2]) > 3]) >= 2  # it did reconnect


def test_power_off_mid_print_is_lost_once_then_recovers(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> Collector:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (_, collector):
            start_print(sim)
            await wait_until(lambda: "print_started" in collector.events())
            sim.power_off()
            await wait_until(lambda: "printer_lost_while_printing" in collector.events())
            offline = [s for s in collector.statuses() if s.state == "offline"]
            assert offline
            assert all(s.nozzle is None and s.progress_percent is None for s in offline)
            await asyncio.sleep(0.6)  # more failed checks: still only one "lost"
            sim.power_on()
            await wait_until(lambda: collector.statuses()[-1].state == "printing")
            return collector

    collector = asyncio.run(scenario())
    assert collector.events() == [
        "printer_online",
        "print_started",
        "printer_offline",
        "printer_lost_while_printing",
        "printer_online",
    ]


def test_refused_connection_is_held_by_other_client(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> Collector:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (_, collector):
            await wait_until(lambda: "printer_online" in collector.events())
            sim.power_off(refuse=True)
            await wait_until(lambda: "printer_held_by_other_client" in collector.events())
            sim.power_on()
            await wait_until(lambda: collector.statuses()[-1].state == "idle")
            return collector

    collector = asyncio.run(scenario())
    assert collector.events() == [
        "printer_online",
        "printer_held_by_other_client",
        "printer_online",
    ]
    held = [s for s in collector.statuses() if s.state == "held_by_other_client"]
    assert held
    assert held[0].nozzle is None


def test_one_hanging_printer_never_delays_the_other(
    configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    model = PrinterModel()
    with (
        SimulatorThread(PrinterSimulator()) as hung,
        SimulatorThread(PrinterSimulator(model)) as good,
    ):
        hung.set_faults(hang=True)
        good.call(lambda: model.start_print(PrintJob(duration_s=600)))

        async def scenario() -> tuple[list[float], Collector]:
            config = configs.make({"hung": hung.port, "good": good.port})
            async with running_poller(zmq_context, config) as (_, collector):
                await wait_until(lambda: len(collector.statuses("good")) >= 15, within_s=15)
                await wait_until(lambda: bool(collector.statuses("hung")), within_s=15)
                times = [s.ts.timestamp() for s in collector.statuses("good")]
                return [b - a for a, b in itertools.pairwise(times)], collector

        gaps, collector = asyncio.run(scenario())
    assert max(gaps[1:]) < 1.0  # polled at 0.2 s while the other printer's replies never came
    assert collector.statuses("hung")[-1].state == "held_by_other_client"


def test_sigterm_path_releases_the_printer(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> None:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (_, collector):
            start_print(sim)
            await wait_until(lambda: "print_started" in collector.events())
            assert sim.open_connections() == 1
        began = time.monotonic()
        await wait_until(lambda: sim.open_connections() == 0, within_s=3)
        assert time.monotonic() - began < 3

    asyncio.run(scenario())


@pytest.mark.parametrize(("paused", "outcome"), [(True, "done"), (False, "failed")])
def test_a_command_sent_before_a_restart_is_only_verified_never_resent(
    sim: SimulatorThread,
    tmp_path: Path,
    paused: bool,
    outcome: str,
    configs: ConfigFactory,
    zmq_context: zmq.asyncio.Context,
) -> None:
    from services.poller.journal import Journal

    config = configs.make({"rex1": sim.port})
    journal = Journal(Layout.of(config).journal("rex1"))
    asyncio.run(journal.mark_sending("c-old"))  # a killed life
    start_print(sim)
    if paused:
        sim.call(sim.sim.model.pause)  # the earlier life's M25 did reach the printer

    async def scenario() -> tuple[str, str]:
        async with running_poller(zmq_context, config) as (poller, collector):
            await wait_until(lambda: bool(collector.statuses()))
            return await command(zmq_context, poller, "rex1", "c-old", Pause())

    got, detail = asyncio.run(scenario())
    assert got == outcome, detail
    assert "before a poller restart" in detail
    assert not any(e.text == "~M25" for e in sim.wire() if e.what == "in")


def test_the_sending_mark_is_cleared_by_the_outcome(tmp_path: Path) -> None:
    from services.poller.journal import Journal

    journal = Journal(tmp_path / "p.json")
    asyncio.run(journal.mark_sending("c1"))
    assert Journal(tmp_path / "p.json").was_sending("c1")
    asyncio.run(journal.remember(Answer("c1", "done", "paused")))
    reopened = Journal(tmp_path / "p.json")
    assert not reopened.was_sending("c1")
    assert reopened.outcome("c1") == Answer("c1", "done", "paused")
