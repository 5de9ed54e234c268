"""gateway.runner: several services in one process share a stop and a fate."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq.asyncio

from gateway import runner
from gateway.health import Problems, read_problems, starts
from gateway.layout import Layout


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[Layout]:
    umask = os.umask(0o022)  # serve() sets the owner-only umask: give the test's back after
    os.umask(umask)
    yield Layout(tmp_path / "data", tmp_path / "run")
    os.umask(umask)


class Broken(Exception):
    pass


def test_a_failing_service_stops_the_others_cleanly_and_ends_the_process(
    layout: Layout,
) -> None:
    stopped_cleanly: list[str] = []
    boards: dict[str, int] = {}

    async def steady(ctx: zmq.asyncio.Context, stop: asyncio.Event, problems: Problems) -> None:
        boards.update({b.service: b.pid for b in read_problems(layout)})
        await stop.wait()  # a service obeys its stop: its threads get joined, its files closed
        stopped_cleanly.append(problems.service)

    async def failing(ctx: zmq.asyncio.Context, stop: asyncio.Event, problems: Problems) -> None:
        await asyncio.sleep(0.05)
        raise Broken("a bug")

    with pytest.raises(Broken):
        runner.run(layout, [runner.Service("steady", steady), runner.Service("failing", failing)])
    assert stopped_cleanly == ["steady"]
    assert boards == {"steady": os.getpid(), "failing": os.getpid()}  # one process, two boards
    assert starts(layout, "steady") == starts(layout, "failing") == 1


def test_services_that_stop_cleanly_end_the_process_with_zero(layout: Layout) -> None:
    ran: list[str] = []

    async def once(ctx: zmq.asyncio.Context, stop: asyncio.Event, problems: Problems) -> None:
        ran.append(problems.service)  # returning ends this one and asks the others to stop

    async def steady(ctx: zmq.asyncio.Context, stop: asyncio.Event, problems: Problems) -> None:
        await stop.wait()
        ran.append(problems.service)

    assert runner.run(layout, [runner.Service("a", once), runner.Service("b", steady)]) == 0
    assert ran == ["a", "b"]
