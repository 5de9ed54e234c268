"""A hostile printer beside a healthy one, in one poller: huge and non-finite numbers, binary
noise, a reply that never ends, text made to look like HTML and shell. The healthy printer
never misses a beat, the hostile one is reported as what it is, every record is valid."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
import zmq.asyncio

from gateway.messages import Status, json_encoder, record_json_decoder
from simulator import PrinterSimulator, PrintJob, SimulatorThread
from simulator.server import NASTY_FILE, NASTY_NAME, Hostility
from tests.support.configs import ConfigFactory
from tests.support.poller import running_poller
from tests.support.printers import fast_model
from tests.support.waiting import wait_until


@pytest.fixture
def pair() -> Iterator[tuple[SimulatorThread, SimulatorThread]]:
    """A healthy printer and one to make hostile, both printing."""
    sims = []
    for _ in range(2):
        model = fast_model()
        sim = SimulatorThread(PrinterSimulator(model)).__enter__()
        sim.call(lambda model=model: model.start_print(PrintJob(duration_s=600)))  # type: ignore[misc]
        sims.append(sim)
    yield sims[0], sims[1]
    for sim in sims:
        sim.close()


def _gaps(statuses: list[Status]) -> list[float]:
    return [(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(statuses)]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("huge_numbers", "outside"),
        ("non_finite", "outside"),
        ("binary", ""),
        ("endless", "not complete within"),
    ],
)
def test_garbage_values_make_an_error_state_and_spare_the_other_printer(
    pair: tuple[SimulatorThread, SimulatorThread],
    configs: ConfigFactory,
    mode: Hostility,
    reason: str,
    zmq_context: zmq.asyncio.Context,
) -> None:
    good, bad = pair
    bad.set_faults(hostile=mode)
    config = configs.make({"good": good.port, "bad": bad.port})

    async def main() -> None:
        async with running_poller(zmq_context, config) as (poller, collector):
            await wait_until(lambda: any(s.state == "error" for s in collector.statuses("bad")))
            watched_from = len(collector.statuses("good"))
            await asyncio.sleep(2.0)  # the hostile printer keeps misbehaving meanwhile
            statuses = collector.statuses("good")[watched_from:]
            assert len(statuses) >= 5
            assert max(_gaps(statuses)) < 1.0  # poll 0.2 s: never held up by the other
            assert {s.state for s in statuses} == {"printing"}
            bad_watcher = poller.watchers["bad"]
            assert bad_watcher.state == "error"
            assert reason in (bad_watcher.detail or "")
            assert poller.watchers["good"].state == "printing"
            # every record is valid against the bounds (the collector refuses invalid ones)
            for record in collector.unique():
                assert record_json_decoder.decode(json_encoder.encode(record)) == record
            assert "printer_offline" not in collector.events("bad")  # reachable, not offline

    asyncio.run(main())


def test_hostile_text_is_carried_as_data(
    pair: tuple[SimulatorThread, SimulatorThread],
    configs: ConfigFactory,
    zmq_context: zmq.asyncio.Context,
) -> None:
    good, bad = pair
    bad.set_faults(hostile="nasty_text")
    config = configs.make({"good": good.port, "bad": bad.port})

    async def main() -> None:
        async with running_poller(zmq_context, config) as (_, collector):
            await wait_until(lambda: any(s.file for s in collector.statuses("bad")))
            status = next(s for s in collector.statuses("bad") if s.file)
            assert status.file == NASTY_FILE  # byte for byte: escaping is the reader's job
            assert status.printer.name == "bad"  # the configured name, not the printer's
            assert status.printer.model == NASTY_NAME
            assert status.state == "printing"

    asyncio.run(main())


def test_the_printer_recovers_when_it_talks_sense_again(
    pair: tuple[SimulatorThread, SimulatorThread],
    configs: ConfigFactory,
    zmq_context: zmq.asyncio.Context,
) -> None:
    good, bad = pair
    bad.set_faults(hostile="huge_numbers")
    config = configs.make({"good": good.port, "bad": bad.port})

    async def main() -> None:
        async with running_poller(zmq_context, config) as (poller, collector):
            await wait_until(lambda: poller.watchers["bad"].state == "error")
            bad.set_faults(hostile="none")
            await wait_until(lambda: poller.watchers["bad"].state == "printing")
            assert poller.watchers["bad"].detail is None
            await wait_until(lambda: "print_started" in collector.events("bad"))
            assert collector.events("bad").count("print_started") == 1

    asyncio.run(main())
