"""Another client has the printer (issue 12): both episodes against the simulator over real
TCP, counting our connection attempts from its wire log; garbage is not another client; a
lingering session of our own is.

Bounds derive from the probe interval P (1 s here): detection and return within two looks
(P plus the look's listening, twice, plus slack for a busy machine); while held at most one
connection attempt per P."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import zmq.asyncio

from gateway.bus import Execute, request_command
from gateway.commands import Pause
from gateway.config import Config
from simulator import PrintJob, SimulatorThread
from tests.support.configs import ConfigFactory
from tests.support.poller import Collector, running_poller
from tests.support.waiting import wait_until

logger = logging.getLogger(__name__)
P = 1.0
LOOK_S = P + 0.8 + 0.1  # a held look: the interval, its listening, the reads
BOUND_S = 2 * LOOK_S + 1.0  # two looks and slack
HELD_FOR_S = 4 * P


def config(configs: ConfigFactory, sim: SimulatorThread) -> Config:
    return configs.make({"rex1": {"port": sim.port, "probe_interval_s": P, "poll_interval_s": 0.2}})


def sent(sim: SimulatorThread) -> list[str]:
    return [e.text for e in sim.wire() if e.what == "in"]


def gaps_between_attempts(sim: SimulatorThread, since: float, until: float) -> list[float]:
    """Seconds between consecutive connection attempts (the wire log's opens) in a window."""
    opens = [e.t for e in sim.wire() if e.what == "open" and since <= e.t <= until]
    return [b - a for a, b in itertools.pairwise(opens)]


async def episode(
    sim: SimulatorThread, collector: Collector, switch: dict[str, object], off: dict[str, object]
) -> tuple[float, float, int]:
    """Turn the episode on, wait for held, keep it a while, turn it off, wait for idle:
    (detection s, return s, connection attempts while held). Between detection and
    release, attempts are at least one probe interval apart (0.9 P: timer resolution)."""
    await wait_until(lambda: collector.events() == ["printer_online"])
    began = time.monotonic()
    sim.set_faults(**switch)
    await wait_until(
        lambda: collector.statuses()[-1].state == "held_by_other_client", within_s=BOUND_S
    )
    detected = time.monotonic() - began
    since = time.monotonic()
    await asyncio.sleep(HELD_FOR_S)
    attempts = sim.connection_attempts(since)
    assert collector.statuses()[-1].state == "held_by_other_client"
    released = time.monotonic()
    gaps = gaps_between_attempts(sim, began + detected, released)
    assert all(gap >= 0.9 * P for gap in gaps), gaps
    sim.set_faults(**off)
    await wait_until(lambda: collector.statuses()[-1].state == "idle", within_s=BOUND_S)
    return detected, time.monotonic() - released, attempts


def test_foreign_control_with_leaking_replies_is_held_with_true_values(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> tuple[Collector, tuple[float, float, int]]:
        async with running_poller(zmq_context, config(configs, sim)) as (_, collector):
            measured = await episode(
                sim, collector, {"foreign_poll_hz": 2.0}, {"foreign_poll_hz": 0.0}
            )
            return collector, measured

    collector, (detected, returned, attempts) = asyncio.run(scenario())
    assert collector.events() == [
        "printer_online",
        "printer_held_by_other_client",
        "printer_online",
    ]
    held = [s for s in collector.statuses() if s.state == "held_by_other_client"]
    assert all(s.nozzle is not None and s.bed is not None for s in held)  # our replies, true
    assert held[0].printer.serial == "SNSIM0000001"
    assert attempts <= HELD_FOR_S / P + 1  # no storm: one look per interval at most
    assert not any(text.startswith("~M601") for text in sent(sim))  # read-only, as ever
    logger.info("A: detected in %.2f s, back in %.2f s, %d connects", detected, returned, attempts)


def test_a_slow_printer_held_by_a_poller_is_one_episode_not_a_flapping_one(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    """Reads that take most of a probe's listening budget once made the probe listen
    for nothing and credited connect-and-read time as quiet: HELD cleared while the other
    client still polled, and a second held event followed. Only real listening counts."""
    sim.set_faults(reply_delay_s=0.15)  # four requests a look: 0.6 s of reads

    async def scenario() -> Collector:
        async with running_poller(zmq_context, config(configs, sim)) as (_, collector):
            await wait_until(lambda: collector.events() == ["printer_online"], within_s=10)
            sim.set_faults(foreign_poll_hz=2.0)
            await wait_until(
                lambda: "printer_held_by_other_client" in collector.events(), within_s=BOUND_S * 2
            )
            await asyncio.sleep(20 * P)  # the other client keeps polling all along
            return collector

    collector = asyncio.run(scenario())
    assert collector.events() == ["printer_online", "printer_held_by_other_client"]
    after = collector.statuses()[-3:]
    assert all(s.state == "held_by_other_client" for s in after), [s.state for s in after]


def test_one_connection_printer_turning_us_away_is_held_without_a_storm(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> tuple[Collector, tuple[float, float, int]]:
        async with running_poller(zmq_context, config(configs, sim)) as (_, collector):
            measured = await episode(
                sim, collector, {"one_connection": True}, {"one_connection": False}
            )
            return collector, measured

    collector, (detected, returned, attempts) = asyncio.run(scenario())
    assert collector.events() == [
        "printer_online",
        "printer_held_by_other_client",
        "printer_online",
    ]
    held = [s for s in collector.statuses() if s.state == "held_by_other_client"]
    assert all(s.nozzle is None for s in held)  # nothing was read: nothing is shown
    assert 1 <= attempts <= HELD_FOR_S / P + 1
    logger.info("B: detected in %.2f s, back in %.2f s, %d connects", detected, returned, attempts)


def test_garbage_and_upload_acks_before_each_reply_are_not_another_client(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    sim.set_faults(garbage_lines=True)  # junk, a bare ok, "N0001 ok.", a stray frame, each reply

    async def scenario() -> Collector:
        async with running_poller(zmq_context, config(configs, sim)) as (_, collector):
            await wait_until(lambda: len(collector.statuses()) >= 3, within_s=4 * P + 2)
            return collector

    collector = asyncio.run(scenario())
    assert {s.state for s in collector.statuses()} == {"idle"}
    assert collector.events() == ["printer_online"]


def test_have_been_connected_is_our_lingering_session_and_the_read_back_decides(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    sim.call(lambda: setattr(sim.sim.model, "lingering_session", True))
    sim.call(lambda: sim.sim.model.start_print(PrintJob(duration_s=60)))

    async def scenario() -> tuple[str, str]:
        async with running_poller(zmq_context, configs.make({"rex1": sim.port})) as (
            poller,
            collector,
        ):
            await wait_until(lambda: "print_started" in collector.events())
            reply = await request_command(
                zmq_context,
                poller.layout.poller_endpoint("rex1"),
                Execute("c-linger", Pause()),
                timeout_s=10,
                attempts=1,
            )
            assert reply.answer is not None
            return reply.answer.outcome, reply.answer.detail

    outcome, detail = asyncio.run(scenario())
    assert (outcome, detail) == ("done", "M25 sent under control; effect verified")
    assert sent(sim).count("~M602") == 1  # the lingering session is ended too
    assert sim.truth()["status"] == "PAUSED"
