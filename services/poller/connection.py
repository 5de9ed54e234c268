"""One printer's connection as the watcher and the commands share it: opened on demand (with
M115 read once per connection), closed on decision, used by one of them at a time."""

from __future__ import annotations

import asyncio

from gateway.config import PrinterSection
from services.poller.link import PrinterLink
from services.poller.observe import read_info
from services.poller.protocol import MachineInfo


class PrinterConnection:
    """The link of one printer, or none. ``turn`` is held for a whole poll cycle or a whole
    command, so a command never interleaves with a reading on the one socket."""

    def __init__(
        self, printer: PrinterSection, connect_timeout_s: float, request_timeout_s: float
    ) -> None:
        self.printer = printer
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self.turn = asyncio.Lock()
        self.info: MachineInfo | None = None  # the last M115: kept while the printer is away
        self._link: PrinterLink | None = None

    @property
    def held(self) -> bool:
        """Whether the printer's connection is open right now."""
        return self._link is not None

    async def open(self) -> PrinterLink:
        """The open link, connecting (and reading M115) first when there is none."""
        if self._link is None:
            link = await PrinterLink.open(
                self.printer.host, self.printer.port, self.connect_timeout_s
            )
            kept = False
            try:  # closed on every way out but success, cancellation included
                self.info = await read_info(link, self.request_timeout_s)
                kept = True
            finally:
                if not kept:
                    await link.close()
            self._link = link
        return self._link

    async def close(self) -> None:
        """Let the printer go (a no-op without a link)."""
        if self._link is not None:
            link, self._link = self._link, None
            await link.close()
