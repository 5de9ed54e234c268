"""One printer's connection as the watcher and the commands share it: opened on demand (with
M115 read once per connection), closed on decision, used by one of them at a time. It also
keeps what sharing needs to know: connection attempts in the last minute, and the foreign
frames heard since the last look."""

from __future__ import annotations

import asyncio
import collections
import time

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
        self._attempts: collections.deque[float] = collections.deque(maxlen=10_000)
        self._counted_foreign = 0  # of the link's foreign frames, those already handed out
        self._counted_listened = 0.0  # of the link's listened seconds, those handed out

    @property
    def held(self) -> bool:
        """Whether the printer's connection is open right now."""
        return self._link is not None

    async def open(self) -> PrinterLink:
        """The open link, connecting (and reading M115) first when there is none, or when
        the one open had a reply come too late (its tail would look like a leak)."""
        if self._link is not None and self._link.poisoned:
            await self.close()
        if self._link is None:
            self._attempts.append(time.monotonic())
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
            self._counted_foreign, self._counted_listened = 0, 0.0
        return self._link

    def hearing(self) -> tuple[int, float]:
        """Foreign frames the open link heard since the last call (or since it opened), and
        the seconds it really listened in that time (``PrinterLink.listened_s``: connecting
        and reading our own replies are not listening); (0, 0.0) without a link."""
        if self._link is None:
            return 0, 0.0
        link = self._link
        foreign = link.leaks.foreign - self._counted_foreign
        listened = link.listened_s - self._counted_listened
        self._counted_foreign, self._counted_listened = link.leaks.foreign, link.listened_s
        return foreign, listened

    def attempts_last_minute(self) -> int:
        """Connection attempts in the last 60 s (status shows it: no storm while held)."""
        horizon = time.monotonic() - 60.0
        while self._attempts and self._attempts[0] < horizon:
            self._attempts.popleft()
        return len(self._attempts)

    async def close(self) -> None:
        """Let the printer go (a no-op without a link)."""
        if self._link is not None:
            link, self._link = self._link, None
            await link.close()
