"""``printer-gateway run poller [--printer ID]``: every configured printer watched by its own
task in one process (or one printer per process with ``--printer``).

One process with isolated tasks is the default: all printer I/O is asyncio with a deadline on
every connect and reply, so a printer that hangs only ever blocks its own task, and the
process shares one ZeroMQ sender towards the uplink. ``--printer`` runs a single printer, for
operators who want a crash of one printer's code contained by supervisord.
"""

from __future__ import annotations

import asyncio
import logging
import time

import zmq.asyncio

from gateway import runner
from gateway.bus import CommandHandler, CommandServer, Execute, RecordSender
from gateway.commands import Answer
from gateway.config import Config, PrinterSection
from gateway.health import Problems
from gateway.layout import Layout
from services.poller.journal import Journal
from services.poller.schedule import Tuning
from services.poller.watcher import PrinterWatcher

logger = logging.getLogger(__name__)
FLUSH_ON_STOP_S = 2.0


class Poller:
    """Watchers for the chosen printers, their command servers and the record sender."""

    def __init__(
        self,
        config: Config,
        printers: tuple[PrinterSection, ...],
        ctx: zmq.asyncio.Context,
        tuning: Tuning | None = None,
        problems: Problems | None = None,
    ) -> None:
        self.layout = layout = Layout.of(config)
        self.problems = problems or Problems(None, "poller")
        self.sender = RecordSender(ctx, layout.records_endpoint, self._acknowledged)
        self.watchers = {
            printer.id: PrinterWatcher(
                printer,
                config.limits,
                config.gateway.id,
                Journal(layout.journal(printer.id)),
                self.sender.submit,
                tuning,
                layout,
                self.problems,
            )
            for printer in printers
        }
        self.servers = [
            CommandServer(
                ctx,
                layout.poller_endpoint(printer.id),
                self._handler(printer.id),
                f"commands for {printer.id}",
            )
            for printer in printers
        ]

    def _acknowledged(self, ids: set[str]) -> None:
        for watcher in self.watchers.values():
            watcher.acknowledged(ids)

    def _handler(self, printer_id: str) -> CommandHandler:
        watcher = self.watchers[printer_id]

        async def handle(request: Execute) -> Answer:
            deadline = None if request.ttl_s is None else time.monotonic() + request.ttl_s
            return await watcher.commands.answer(request.command_id, request.action, deadline)

        return handle

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop`, then release every printer and flush what the uplink will take."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.sender.run(stop, self.problems))
                for watcher in self.watchers.values():
                    group.create_task(watcher.run(stop))
                for server in self.servers:
                    group.create_task(server.run(stop, self.problems))
            if not await self.sender.flush(FLUSH_ON_STOP_S):
                logger.info(
                    "%d records not acknowledged at exit (events stay in the journal)",
                    self.sender.pending,
                )
            for watcher in self.watchers.values():  # acks that came during the flush
                await watcher.settle_acks_at_exit()
        finally:
            self.sender.close()
            for server in self.servers:
                server.close()


def service(config: Config, printer_id: str | None) -> runner.Service:
    """The poller (every printer, or one), to be run by ``runner.run`` until SIGTERM."""
    printers = (config.printer(printer_id),) if printer_id else config.printers

    async def body(ctx: zmq.asyncio.Context, stop: asyncio.Event, problems: Problems) -> None:
        poller = Poller(config, printers, ctx, problems=problems)
        logger.info("poller started for %s", ", ".join(p.id for p in printers))
        await poller.run(stop)

    # One process per printer (`--printer`) runs as its own supervisord program: it counts its
    # starts and reports its problems under its own name, never over another poller's.
    name = f"poller-{printer_id}" if printer_id else "poller"
    return runner.Service(name, body)
