"""gateway.runner: several services in one process share a stop and a fate."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
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


def test_a_service_that_fails_with_a_socket_open_still_ends_the_process(tmp_path: Path) -> None:
    """A body that raises before closing its sockets must not leave the process waiting in
    the ZeroMQ context's term() for ever: supervisord would see it alive, never restart it."""
    script = f"""
import asyncio, zmq
from gateway import runner
from gateway.layout import Layout

async def leaky(ctx, stop, problems):
    sock = ctx.socket(zmq.PUSH)  # held by the traceback's frame: never collected
    sock.connect("ipc://{tmp_path}/nobody.ipc")
    raise RuntimeError("a bug, with a socket left open")

async def steady(ctx, stop, problems):
    await stop.wait()

runner.run(Layout(Path("{tmp_path}/data"), Path("{tmp_path}/run")),
           [runner.Service("leaky", leaky), runner.Service("steady", steady)])
"""
    done = subprocess.run(
        [sys.executable, "-c", "from pathlib import Path\n" + script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "a bug, with a socket left open" in done.stderr
