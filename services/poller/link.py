"""One TCP connection to one printer: the only place the gateway opens a printer socket.

A PrinterLink serialises requests (one in flight, an asyncio lock), frames each reply with a
fresh ReplyBuffer and a per-request deadline, and translates every socket failure into a
PrinterIOError subclass whose type decides the state the poller reports:
unreachable -> offline; refused, starved, reset, garbled -> held by another client (after
retries); accepted and then closed before a single byte -> PrinterTurnedAwayError (a
one-connection printer busy with someone else). It never retries by itself: the lease and
sharing state machines own that decision.

Every byte received also goes to a LeakScanner (``leaks.py``), marked *quiet* when none of
our requests was waiting for it: what was already waiting when a request is about to go
out (read in a short drain first when the link was idle, so a leak that arrived between two
polls is not mistaken for a prefix of our reply) and what ``listen`` hears. Its count of
foreign frames is how another client's presence shows.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time

from gateway.errors import (
    PrinterDisconnectedError,
    PrinterRefusedError,
    PrinterTimeoutError,
    PrinterTurnedAwayError,
    PrinterUnreachableError,
)
from services.poller.leaks import LeakScanner
from services.poller.protocol import Reply, ReplyBuffer, encode_command

logger = logging.getLogger(__name__)
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ETIMEDOUT}
_RESET = {errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE}
# How long a request first waits for bytes that are already on their way: long enough for
# the event loop to hand over what the socket holds, short enough to cost nothing per poll.
DRAIN_WAIT_S = 0.002
# ...and only after the link was idle this long: between the requests of one cycle a leak
# has no time to arrive, and a reading's M119 and M105 should stay as close as they were.
DRAIN_AFTER_IDLE_S = 0.02
# ...and never more than this much, however fast a broken or hostile peer streams: the drain
# runs outside the request's deadline.
DRAIN_MAX_BYTES = 65536
DRAIN_MAX_S = 0.05


class PrinterLink:
    """An open connection; use ``await PrinterLink.open(...)`` and always ``await close()``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        self.closed = False
        self.opened_at = time.monotonic()
        self.requests = 0
        self.received = 0  # bytes, all told
        self.leaks = LeakScanner()
        self.peer_closed = False  # the printer hung up while we listened
        # Seconds in which anything foreign would have been heard as such: listening, and the
        # idle gaps between requests (what arrives in one is read by the next drain). The time
        # spent connecting and reading our own replies is not: a foreign frame interleaved
        # with a reply of ours is not counted (docs/protocol.md, "Another client").
        self.listened_s = 0.0
        self._idle_since: float | None = None  # monotonic end of the last reply
        self.poisoned = False  # a reply came too late: its tail may still arrive, unasked

    @classmethod
    async def open(cls, host: str, port: int, connect_timeout_s: float) -> PrinterLink:
        """Connect within `connect_timeout_s` or raise PrinterUnreachable/RefusedError."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), connect_timeout_s
            )
        except TimeoutError as err:
            raise PrinterUnreachableError(f"{host}:{port}: connect timed out") from err
        except ConnectionRefusedError as err:
            raise PrinterRefusedError(f"{host}:{port}: connection refused") from err
        except OSError as err:
            if err.errno in _UNREACHABLE or isinstance(err, socket.gaierror):
                raise PrinterUnreachableError(f"{host}:{port}: {err.strerror or err}") from err
            if err.errno in _RESET:  # accepted and reset before the connect call returned
                raise PrinterTurnedAwayError(f"{host}:{port}: reset on connect") from err
            raise PrinterDisconnectedError(f"{host}:{port}: {err.strerror or err}") from err
        return cls(reader, writer)

    async def request(self, code: str, *args: str, deadline_s: float = 5.0) -> Reply:
        """Send one command and return its framed reply (PrinterProtocolError on bad bytes)."""
        async with self._lock:
            if self.closed:
                raise PrinterDisconnectedError("link already closed")
            self.requests += 1
            buffer = ReplyBuffer(code)
            try:
                idle = self._idle_since
                if idle is None or time.monotonic() - idle >= DRAIN_AFTER_IDLE_S:
                    if idle is not None:
                        self.listened_s += time.monotonic() - idle
                    await self._drain_waiting()
                self._writer.write(encode_command(code, *args))
                reply = await asyncio.wait_for(self._read_into(buffer), deadline_s)
            except TimeoutError as err:
                # The late reply may still come, and would then look like another client's:
                # this link is not to be used for reading again.
                self.poisoned = True
                raise PrinterTimeoutError(
                    f"no complete reply to {code} within {deadline_s}s"
                ) from err
            except (ConnectionError, OSError) as err:
                raise self._lost(f"connection lost during {code}: {err}") from err
            self._idle_since = time.monotonic()
            return reply

    async def listen(self, duration_s: float) -> float:
        """Hear what the printer sends unasked for up to `duration_s`, ending early at the
        first foreign frame or when the printer hangs up (``peer_closed``); the seconds heard."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            began = loop.time()
            deadline = began + duration_s
            foreign = self.leaks.foreign
            while not self.closed and self.leaks.foreign == foreign:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    chunk = await asyncio.wait_for(self._reader.read(4096), left)
                except TimeoutError:
                    break
                except (ConnectionError, OSError) as err:
                    logger.debug("printer hung up while we listened: %s", err)
                    chunk = b""
                if not chunk:
                    self.peer_closed = True
                    break
                self._heard(chunk, quiet=True)
            heard_s = loop.time() - began
            self.listened_s += heard_s
            return heard_s

    async def _drain_waiting(self) -> None:
        """Take in what already arrived unasked, before a request makes everything after it
        look like a reply's prefix. Bounded in bytes and time: a peer that never stops
        sending would otherwise hold the link (and the printer's turn) for ever."""
        began, taken = time.monotonic(), 0
        while taken < DRAIN_MAX_BYTES and time.monotonic() - began < DRAIN_MAX_S:
            try:
                chunk = await asyncio.wait_for(self._reader.read(4096), DRAIN_WAIT_S)
            except TimeoutError:
                return
            if not chunk:
                return  # closed: the request that follows runs into it and says so
            taken += len(chunk)
            self._heard(chunk, quiet=True)

    def _heard(self, chunk: bytes, *, quiet: bool) -> None:
        self.received += len(chunk)
        self.leaks.feed(chunk, quiet=quiet)

    def _lost(self, message: str) -> PrinterDisconnectedError:
        """A closed connection: turned away when it never carried a byte to us."""
        if self.received == 0 and self.requests == 1:
            return PrinterTurnedAwayError(f"{message} (closed before any reply)")
        return PrinterDisconnectedError(message)

    async def _read_into(self, buffer: ReplyBuffer) -> Reply:
        await self._writer.drain()
        while (reply := buffer.next_reply()) is None:
            chunk = await self._reader.read(4096)
            if not chunk:
                raise self._lost(f"printer closed the connection during {buffer.code}")
            self.received += len(chunk)  # before framing: a garbled reply still came from it
            buffer.feed(chunk)
            asked = len(chunk) - len(buffer.trailing)  # after our ok, nothing was asked for
            self.leaks.feed(chunk[:asked], quiet=False)
            if asked < len(chunk):
                self.leaks.feed(chunk[asked:], quiet=True)
        return reply

    async def close(self) -> None:
        """Close the socket (idempotent, never raises)."""
        if self.closed:
            return
        self.closed = True
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        except (TimeoutError, ConnectionError, OSError) as err:
            logger.debug("closing printer socket: %s", err)
