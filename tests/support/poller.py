"""The poller in-process against simulators, with a receiver collecting what it sends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import zmq.asyncio

from gateway.bus import RecordReceiver
from gateway.config import Config
from gateway.layout import Layout
from gateway.messages import Event, Record, Status
from services.poller.schedule import Tuning
from services.poller.service import Poller

FAST = Tuning(
    connect_timeout_s=0.5,
    retry_attempts=2,
    retry_backoff_s=0.05,
    retry_backoff_cap_s=0.1,
    lost_grace_s=1.0,
    active_recheck_s=0.2,
    verify_within_s=2.0,
    request_timeout_s=1.0,
)


class Collector:
    """Receives records like the uplink would, acknowledging each batch (when `acking`)."""

    def __init__(self, ctx: zmq.asyncio.Context, config: Config) -> None:
        self.receiver = RecordReceiver(ctx, Layout.of(config).records_endpoint)
        self.received: list[Record] = []
        self.acking = True

    async def run(self, stop: asyncio.Event) -> None:
        """Collect until stop."""
        while not stop.is_set():
            got = await self.receiver.receive(0.05)
            if got is None:
                continue
            assert not got.invalid, got.invalid
            self.received.extend(got.records)
            if self.acking:
                await self.receiver.acknowledge(got.peer, got.ids)

    def unique(self) -> list[Record]:
        """Records in arrival order, each id once (re-sends share the id)."""
        seen: dict[str, Record] = {}
        for record in self.received:
            seen.setdefault(record.id, record)
        return list(seen.values())

    def events(self, printer_id: str | None = None) -> list[str]:
        """Event names received (deduplicated by id), in order."""
        return [
            r.event
            for r in self.unique()
            if isinstance(r, Event) and (printer_id is None or r.printer_id == printer_id)
        ]

    def statuses(self, printer_id: str | None = None) -> list[Status]:
        """Status records received (deduplicated by id), in order."""
        return [
            r
            for r in self.unique()
            if isinstance(r, Status) and (printer_id is None or r.printer_id == printer_id)
        ]

    def close(self) -> None:
        """Close the receiver socket."""
        self.receiver.close()


@contextlib.asynccontextmanager
async def collecting(ctx: zmq.asyncio.Context, config: Config) -> AsyncIterator[Collector]:
    """A collector running until the block ends."""
    stop = asyncio.Event()
    collector = Collector(ctx, config)
    task = asyncio.create_task(collector.run(stop))
    try:
        yield collector
    finally:
        stop.set()
        await task
        collector.close()


@contextlib.asynccontextmanager
async def running_poller(
    ctx: zmq.asyncio.Context, config: Config, tuning: Tuning = FAST
) -> AsyncIterator[tuple[Poller, Collector]]:
    """A poller for every printer in config and a collecting receiver, both running."""
    stop = asyncio.Event()
    collector = Collector(ctx, config)
    poller = Poller(config, config.printers, ctx, tuning)
    tasks = [asyncio.create_task(collector.run(stop)), asyncio.create_task(poller.run(stop))]
    try:
        yield poller, collector
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        collector.close()
