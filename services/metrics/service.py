"""The metrics service (architecture §4.7): ``GET /metrics`` in the Prometheus text format at
``[metrics] listen``.

Theory of operation
-------------------
* **Where it runs**: a service of the API-side process (``printer-gateway run uplink
  control bridge metrics``), like the MQTT bridge. Without ``[metrics]`` (or with
  ``listen = ""``) it only waits for the stop, and prometheus-client is not imported.
* **Nothing frozen**: a custom collector on a registry of its own (never the global one,
  which would add the process's own metrics and any library's) builds every metric at
  scrape time from current facts (``collector.py``): the uplink's tap for statuses, prints
  and command results (``facts.py``); the poller's printer health files for poll errors;
  the uplink's figures file for the queue, deliveries, drops and upload requests. A
  printer's temperatures, progress and time left come only from a status recent enough
  to be current (two probe intervals and a grace): a printer that is off, or whose poller
  is silent, has none, instead of its last values.
* **Counters** from the tap and the uplink's figures count since this process started,
  the poll errors since the poller started: they restart at zero with their process, which
  Prometheus treats as a counter reset (``rate`` and ``increase`` are right across it).
* **The tap** is a PUB socket that drops rather than blocks: a slow scrape never slows the
  uplink. A record missed while this process was down is not counted.
* **The HTTP server** is prometheus-client's (a thread per scrape, beside the event loop);
  an address it cannot bind (taken, not local) is reported in ``status`` and tried again
  every ``RETRY_BIND_S``, never a crash that would restart the uplink with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import zmq
import zmq.asyncio

from gateway import runner
from gateway.config import Config, listen_address
from gateway.health import Problems
from gateway.layout import Layout
from gateway.messages import DECODE_ERRORS, record_json_decoder
from services.metrics.facts import TapFacts

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

logger = logging.getLogger(__name__)
RETRY_BIND_S = 10.0


async def _follow_tap(ctx: zmq.asyncio.Context, endpoint: str, facts: TapFacts) -> None:
    """Every record the uplink accepts, into the facts, until cancelled."""
    tap = ctx.socket(zmq.SUB)
    tap.setsockopt(zmq.LINGER, 0)
    tap.setsockopt(zmq.SUBSCRIBE, b"")
    tap.connect(endpoint)
    try:
        while True:
            data = await tap.recv()
            try:
                record = record_json_decoder.decode(data)
            except DECODE_ERRORS as err:
                logger.warning("an unreadable record on the tap: %s", err)
                continue
            facts.add(record)
    finally:
        tap.close()


def _serve(config: Config, facts: TapFacts) -> WSGIServer:
    """Bind and serve in prometheus-client's thread (OSError when the address is not ours)."""
    from prometheus_client import CollectorRegistry, start_http_server

    from services.metrics.collector import GatewayCollector

    assert config.metrics is not None
    host, port = listen_address(config.metrics.listen)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(config, facts))
    server, _ = start_http_server(port, addr=host, registry=registry)
    return server


async def _listen(config: Config, facts: TapFacts, stop: asyncio.Event, problems: Problems) -> None:
    assert config.metrics is not None
    listen = config.metrics.listen
    server, logged = None, ""
    while server is None and not stop.is_set():
        try:
            server = _serve(config, facts)
        except OSError as err:
            problems.report("listen", f"cannot listen on {listen}: {err}; trying again")
            if str(err) != logged:  # once, not every RETRY_BIND_S: `status` shows it meanwhile
                logger.warning("metrics: cannot listen on %s (%s): trying again", listen, err)
                logged = str(err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_BIND_S)
    if server is None:
        return
    problems.clear("listen")
    logger.info("metrics at http://%s/metrics", listen)
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(server.shutdown)  # waits for serve_forever to return
        server.server_close()


def service(config: Config) -> runner.Service:
    """The metrics service, to be run by ``runner.run``; idle without ``[metrics] listen``."""

    async def body(ctx: zmq.asyncio.Context, stop: asyncio.Event, problems: Problems) -> None:
        if config.metrics is None or not config.metrics.listen:
            await stop.wait()
            return
        facts = TapFacts()
        tap = asyncio.create_task(_follow_tap(ctx, Layout.of(config).tap_endpoint, facts))
        listener = asyncio.create_task(_listen(config, facts, stop, problems))
        try:
            # The tap only ends by failing: then the process ends too (the runner stops the
            # other services) and supervisord restarts it, rather than serving stale facts.
            await asyncio.wait({tap, listener}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (tap, listener):
                task.cancel()
            results = await asyncio.gather(tap, listener, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result

    return runner.Service("metrics", body)
