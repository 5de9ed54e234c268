"""How every service process runs: one ZeroMQ context, SIGTERM/SIGINT -> a stop event, the
start counted for ``status``, a problems board per service for ``status``, files private to
the owner, and exit code 0 on a clean stop.

A process may host several services (``printer-gateway run uplink control``, what the
bundled supervisord.conf runs): each Python interpreter with asyncio, ZeroMQ, msgspec and
requests loaded costs about 20 MiB of a Pi's memory that no other process shares, and the
uplink and control need the same libraries and talk to the same API. They still run as
separate services: each has its own body, its own problems board, its own sockets and the
same acknowledged protocol between them as when they run apart. They share fate: when one
body ends (an error, or the stop every body obeys), the others are asked to stop cleanly,
and an error then ends the process non-zero so supervisord restarts all of them. Stopping
the others cleanly rather than cancelling them matters: a service's worker threads must be
joined, or the interpreter would wait for them forever instead of exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

import zmq.asyncio

from gateway.health import Problems, record_start
from gateway.layout import Layout
from gateway.locks import AlreadyRunning, hold

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
Body = Callable[[zmq.asyncio.Context, asyncio.Event, Problems], Awaitable[None]]


class Service(NamedTuple):
    """One service to host: its name (problems board, start count, log line) and its body."""

    name: str
    body: Body


async def serve(layout: Layout, services: Sequence[Service]) -> None:
    """Run every body(ctx, stop, problems) until all return; SIGTERM and SIGINT set stop.

    The first error (after every body has stopped) is raised again."""
    os.umask(0o077)  # sockets, databases, journals, health files: the owner's alone
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    held = [  # one of each service per gateway, for the life of this process
        hold(layout.service_lock(service.name), f"the {service.name} service")
        for service in services
    ]
    for service in services:
        record_start(layout, service.name)
    ctx = zmq.asyncio.Context()
    try:
        results = await asyncio.gather(
            *(_hosted(service, ctx, stop, Problems(layout, service.name)) for service in services),
            return_exceptions=True,
        )
    finally:
        # Each service closes its sockets with the linger it needs; a body that failed may
        # have left one open, and term() would wait for it for ever (supervisord would see
        # a live process and never restart it): what is still open is closed now.
        ctx.destroy(linger=0)
        for descriptor in held:
            os.close(descriptor)
    errors = [result for result in results if isinstance(result, BaseException)]
    for later in errors[1:]:  # the first ends the process with its traceback; these too
        logger.error("and another service failed too", exc_info=later)
    if errors:
        raise errors[0]


async def _hosted(
    service: Service, ctx: zmq.asyncio.Context, stop: asyncio.Event, problems: Problems
) -> None:
    try:
        await service.body(ctx, stop, problems)
    finally:
        stop.set()  # whatever ended this one ends the process: the others stop cleanly
    logger.info("%s stopped", service.name)


def run(layout: Layout, services: Sequence[Service]) -> int:
    """Blocking entry point of a service process; 0 on a clean stop, 3 when a service is
    already running for this gateway (said in one line)."""
    if os.environ.get("SUPERVISOR_ENABLED"):
        die_with_parent()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(layout, services))
    except AlreadyRunning as err:
        logger.error("%s for this gateway: not starting a second one", err)
        return 3
    return 0


def die_with_parent() -> None:
    """Under supervisord: be sent SIGTERM when supervisord dies, however it dies (killed,
    or its output pipe gone), so no service outlives it and a second `up` never finds a
    set of orphans still polling the printer (Linux's PR_SET_PDEATHSIG; elsewhere, nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # supervisord was gone before the line above: go now
        os.kill(os.getpid(), signal.SIGTERM)
