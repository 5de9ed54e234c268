"""One TCP connection to one printer: the only place the gateway opens a printer socket.

A PrinterLink serialises requests (one in flight, an asyncio lock), frames each reply with a
fresh ReplyBuffer and a per-request deadline, and translates every socket failure into a
PrinterIOError subclass whose type decides the state the poller reports:
unreachable -> offline; refused, starved, reset, garbled -> held by another client (after
retries). It never retries by itself: the lease state machine owns that decision.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from gateway.errors import (
    PrinterDisconnectedError,
    PrinterRefusedError,
    PrinterTimeoutError,
    PrinterUnreachableError,
)
from services.poller.protocol import Reply, ReplyBuffer, encode_command

logger = logging.getLogger(__name__)
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ETIMEDOUT}


class PrinterLink:
    """An open connection; use ``await PrinterLink.open(...)`` and always ``await close()``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        self.closed = False
        self.requests = 0

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
                self._writer.write(encode_command(code, *args))
                return await asyncio.wait_for(self._read_into(buffer), deadline_s)
            except TimeoutError as err:
                raise PrinterTimeoutError(
                    f"no complete reply to {code} within {deadline_s}s"
                ) from err
            except (ConnectionError, OSError) as err:
                raise PrinterDisconnectedError(f"connection lost during {code}: {err}") from err

    async def _read_into(self, buffer: ReplyBuffer) -> Reply:
        await self._writer.drain()
        while (reply := buffer.next_reply()) is None:
            chunk = await self._reader.read(4096)
            if not chunk:
                raise PrinterDisconnectedError(
                    f"printer closed the connection during {buffer.code}"
                )
            buffer.feed(chunk)
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
