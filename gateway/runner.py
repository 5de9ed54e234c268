"""How every service process runs: one ZeroMQ context, SIGTERM/SIGINT -> a stop event, the
start counted for ``status``, a problems board for ``status``, files private to the owner,
and exit code 0 on a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable

import zmq.asyncio

from gateway.health import Problems, record_start
from gateway.layout import Layout

logger = logging.getLogger(__name__)
Body = Callable[[zmq.asyncio.Context, asyncio.Event, Problems], Awaitable[None]]


async def serve(name: str, layout: Layout, body: Body) -> None:
    """Run body(ctx, stop, problems) until it returns; SIGTERM and SIGINT set stop."""
    os.umask(0o077)  # sockets, databases, journals, health files: the owner's alone
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    record_start(layout, name)
    problems = Problems(layout, name)
    ctx = zmq.asyncio.Context()
    try:
        await body(ctx, stop, problems)
    finally:
        ctx.term()
    logger.info("%s stopped", name)


def run(name: str, layout: Layout, body: Body) -> int:
    """Blocking entry point of a service; 0 on a clean stop."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(name, layout, body))
    return 0
