"""Print jobs in the poller (issue 13): the poller in-process against the simulator over real
TCP, job records and their times against the simulator's truth, ``print_*`` events carrying
the job id, the job block of statuses, a pause, a cancel, a printer that vanished mid-print,
a restart mid-print that continues the same job, and ``printer-gateway jobs``."""

from __future__ import annotations

import asyncio
import json
import time

import msgspec
import zmq.asyncio

from gateway.config import Config
from gateway.layout import Layout
from gateway.messages import Event, Job
from services.poller.jobs_log import read_jobs
from simulator import PrintJob, SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import ConfigFactory
from tests.support.poller import Collector, running_poller
from tests.support.waiting import wait_until

PRINT_S = 3.0


def config(configs: ConfigFactory, sim: SimulatorThread) -> Config:
    """Written to gateway.toml too (the `jobs` verb reads it)."""
    _, written = configs.written(
        {"rex1": {"port": sim.port, "poll_interval_s": 0.2, "probe_interval_s": 0.3}}
    )
    return written


def jobs(collector: Collector) -> list[Job]:
    return [r for r in collector.unique() if isinstance(r, Job)]


def events(collector: Collector) -> list[Event]:
    return [r for r in collector.unique() if isinstance(r, Event)]


def test_a_completed_print_is_one_job_with_its_times_and_its_events_carry_its_id(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context, cli: Cli
) -> None:
    gateway = config(configs, sim)

    async def scenario() -> Collector:
        async with running_poller(zmq_context, gateway) as (_, collector):
            await wait_until(lambda: "printer_online" in collector.events(), within_s=10)
            sim.call(
                lambda: sim.sim.model.start_print(PrintJob(file="cube.gx", duration_s=PRINT_S))
            )
            await wait_until(lambda: jobs(collector), within_s=30)
            return collector

    collector = asyncio.run(scenario())
    [job] = jobs(collector)
    assert (job.outcome, job.file, job.pause_count) == ("completed", "cube.gx", 0)
    assert abs(job.print_s - PRINT_S) < 1.5  # the simulator's extrusion time
    assert job.max_progress_percent == 100.0
    assert job.seq is None  # the uplink gives it one
    printed = [e for e in events(collector) if e.event.startswith("print_")]
    assert [e.event for e in printed] == ["print_started", "print_finished"]
    assert {e.detail["job_id"] for e in printed} == {job.job_id}
    assert printed[-1].detail["outcome"] == "completed"
    assert set(printed[-1].detail["estimate_errors"]) == {"10", "25", "50", "75"}
    running = [s for s in collector.statuses() if s.state == "printing" and s.job is not None]
    assert running, "statuses while printing carry the job block"
    assert all(s.job is not None and s.job.id == job.job_id for s in running)
    elapsed = [s.job.elapsed_s for s in running if s.job is not None]
    assert elapsed == sorted(elapsed)
    # Kept on the Pi for `printer-gateway jobs`.
    kept = read_jobs(Layout.of(gateway).jobs_log("rex1"))
    assert [k.job_id for k in kept] == [job.job_id]
    listed = cli.on(configs.root / "gateway.toml").run("jobs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout.splitlines()[0])["job_id"] == job.job_id
    table = cli.on(configs.root / "gateway.toml").run("jobs")
    assert "cube.gx" in table.stdout
    assert "completed" in table.stdout


def test_a_pause_and_a_cancel_are_counted_and_the_end_is_cancelled(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> Collector:
        async with running_poller(zmq_context, config(configs, sim)) as (_, collector):
            await wait_until(lambda: "printer_online" in collector.events(), within_s=10)
            sim.call(lambda: sim.sim.model.start_print(PrintJob(file="vase.gx", duration_s=60)))
            await wait_until(lambda: "print_started" in collector.events(), within_s=10)
            await asyncio.sleep(1.0)
            sim.call(sim.sim.model.pause)
            await wait_until(lambda: "print_paused" in collector.events(), within_s=10)
            await asyncio.sleep(1.5)
            sim.call(sim.sim.model.resume)
            await wait_until(lambda: "print_resumed" in collector.events(), within_s=10)
            await asyncio.sleep(0.5)
            sim.call(sim.sim.model.cancel)
            await wait_until(lambda: jobs(collector), within_s=10)
            return collector

    collector = asyncio.run(scenario())
    [job] = jobs(collector)
    assert (job.outcome, job.pause_count) == ("cancelled", 1)
    assert 1.0 < job.paused_s < 3.0
    paused = [e for e in events(collector) if e.event in ("print_paused", "print_resumed")]
    assert {e.detail["job_id"] for e in paused} == {job.job_id}


def test_a_printer_that_vanished_mid_print_and_came_back_idle_was_interrupted(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario() -> Collector:
        async with running_poller(zmq_context, config(configs, sim)) as (_, collector):
            sim.call(lambda: sim.sim.model.start_print(PrintJob(file="gone.gx", duration_s=60)))
            await wait_until(lambda: "print_started" in collector.events(), within_s=10)
            await asyncio.sleep(0.5)
            sim.power_off()  # connects time out: gone from the LAN
            sim.call(sim.sim.model.cancel)  # what the printer did while nobody saw it
            await wait_until(lambda: collector.statuses()[-1].state == "offline", within_s=15)
            await asyncio.sleep(3.0)  # dark for a while: none of it may count as printing
            sim.power_on()
            await wait_until(lambda: jobs(collector), within_s=15)
            return collector

    collector = asyncio.run(scenario())
    [job] = jobs(collector)
    assert job.outcome == "interrupted"
    assert job.print_s < 1.5  # printed 0.5 s that anyone saw; the dark time is not printing


def test_a_restart_mid_print_continues_the_same_job(
    sim: SimulatorThread, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    gateway = config(configs, sim)
    sim.call(lambda: sim.sim.model.start_print(PrintJob(file="long.gx", duration_s=6)))

    async def first_life() -> Collector:
        async with running_poller(zmq_context, gateway) as (_, collector):
            await wait_until(lambda: "print_started" in collector.events(), within_s=10)
            await asyncio.sleep(1.0)
            return collector

    async def second_life() -> Collector:
        async with running_poller(zmq_context, gateway) as (_, collector):
            await wait_until(lambda: jobs(collector), within_s=30)
            return collector

    before = asyncio.run(first_life())
    began = time.monotonic()
    after = asyncio.run(second_life())
    started = [e for e in events(before) if e.event == "print_started"]
    assert len(started) == 1
    assert "print_started" not in after.events()  # no second start: the same job goes on
    [job] = jobs(after)
    assert job.job_id == started[0].detail["job_id"]
    assert job.outcome == "completed"
    assert job.print_s >= 6.0 - 1.5  # the time before the restart counts too
    assert time.monotonic() - began < 30
    assert msgspec.json.decode(msgspec.json.encode(job), type=Job) == job
