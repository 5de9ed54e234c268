"""The simulator's TCP side: an asyncio server on port 0 (or any), fault switches, a wire log.

One PrinterModel is shared by every connection, as on the real printer: several sockets are
accepted, control is exclusive, and (with ``cross_talk``) replies leak to the other sockets.
Two episodes of another client (issue 12) are switches too: ``foreign_poll_hz`` (someone
else holds control and polls; its replies leak into every open connection) and
``one_connection`` (someone else has the only connection; every new one is accepted and
reset at once). Every connection attempt is an ``open`` in the wire log, reset ones too.
PrinterSimulator runs inside an event loop; SimulatorThread runs one on a background thread
so synchronous tests and the CLI can script it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from simulator.model import PrinterModel

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Junk a real link shows before a reply: binary noise, a bare "ok" (ends a naive reader early),
# another client's upload ack and a complete reply to a command nobody on this socket sent.
_GARBAGE = b"\x00\xff\xfe\x1b[garbage]\r\nok\r\nN0001 ok.\r\n"


# A hostile or broken printer: replies well framed, with content no honest firmware sends.
Hostility = Literal["none", "huge_numbers", "non_finite", "binary", "endless", "nasty_text"]
_HUGE = "99999999999999999999999"  # above 2**64
_INFINITE = "9" * 400  # float() of this is inf
NASTY_NAME = "<img src=x onerror=alert(1)>"
NASTY_FILE = '"; $(touch /tmp/pwned) `id` \x1b[2J\x1b]0;owned\x07<b>x</b>.gx'


def _hostile_lines(mode: Hostility, lines: list[str]) -> list[str]:
    """The reply lines (header and ok included) a hostile printer sends instead."""
    code = lines[0].split()[1]
    payload = lines[1:-1]
    if mode == "huge_numbers" and code == "M27":
        payload = [f"SD printing byte {_HUGE}/1", f"Layer: {_HUGE}/1"]
    elif mode == "huge_numbers" and code == "M105":
        payload = [f"T0:{_HUGE} /0 B:20/0"]
    elif mode == "non_finite" and code == "M105":
        payload = [f"T0:{_INFINITE}/0 B:{_INFINITE}/0"]
    elif mode == "non_finite" and code == "M27":
        payload = [f"SD printing byte {_INFINITE}/100"]
    elif mode == "nasty_text" and code == "M115":
        named = ("Machine Name:", "Machine Type:")
        payload = [
            f"{p.split(':')[0]}: {NASTY_NAME}" if p.startswith(named) else p for p in payload
        ]
    elif mode == "nasty_text" and code == "M119":
        payload = [
            f"CurrentFile: {NASTY_FILE}" if p.startswith("CurrentFile:") else p for p in payload
        ]
    return [lines[0], *payload, lines[-1]]


def _foreign_reply(code: str) -> bytes:
    other = "M114" if code == "M650" else "M650"
    payload = "X:0 Y:0 Z:0 A:0 B:0" if other == "M114" else "X: 1.0 Y: 0.5"
    return f"CMD {other} Received.\r\n{payload}\r\nok\r\n".encode()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a busy one-connection printer does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Blackhole:
    """A port whose connects time out: a listener with a one-slot accept queue, filled by
    ourselves and never accepted, so the kernel drops every further SYN."""

    def __init__(self, host: str, port: int) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(0)
        self._filler = socket.create_connection((host, port), timeout=1)

    def close(self) -> None:
        self._filler.close()
        self._listener.close()


class Faults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Switchable misbehaviour of the link (the printer's own state lives in PrinterModel)."""

    split_bytes: bool = False  # write each reply one byte at a time
    reply_delay_s: Annotated[float, msgspec.Meta(ge=0, le=120)] = 0.0
    garbage_lines: bool = False  # junk lines, a bare "ok" and a foreign reply before each reply
    drop: Literal["never", "before_reply", "mid_reply"] = "never"  # close the connection
    cross_talk: bool = False  # every reply is also written to every other open connection
    hang: bool = False  # read requests, never answer
    hostile: Hostility = "none"  # content no honest firmware sends (see _hostile_lines)
    # Episode A: another client holds control and polls this often (0 = nobody); the replies
    # to its M119, M105 and M114 leak into every open connection.
    foreign_poll_hz: Annotated[float, msgspec.Meta(ge=0, le=50)] = 0.0
    # Episode B: another client has the printer's only connection; ours are reset at once.
    one_connection: bool = False


class WireEntry(msgspec.Struct, frozen=True):
    """One thing seen on the wire: a connection opened/closed, a request, a reply."""

    t: float  # time.monotonic()
    conn: int
    what: Literal["open", "close", "in", "out"]
    text: str = ""


class PrinterSimulator:
    """Serves a PrinterModel over TCP with fault switches; run inside an asyncio loop."""

    def __init__(
        self,
        model: PrinterModel | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
    ) -> None:
        self.model = model or PrinterModel()
        self.host, self.port = host, port
        self.faults = faults or Faults()
        self.wire: collections.deque[WireEntry] = collections.deque(maxlen=100_000)
        self.powered = False
        self._server: asyncio.Server | None = None
        self._blackhole: _Blackhole | None = None
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._ids = itertools.count(1)
        self._noise = random.Random(8899)  # the binary fault's bytes, the same every run
        self._foreign: asyncio.Task[None] | None = None

    @property
    def open_connections(self) -> int:
        """Connections open right now."""
        return len(self._writers)

    def set_faults(self, **changes: Any) -> Faults:
        """Change fault switches by name; unknown names or bad values raise ValidationError.
        Turning ``foreign_poll_hz`` on or off also gives or takes the model's control to
        the foreign client."""
        merged = {**msgspec.structs.asdict(self.faults), **changes}
        was_foreign = self.faults.foreign_poll_hz > 0
        self.faults = msgspec.convert(merged, Faults)
        if (self.faults.foreign_poll_hz > 0) != was_foreign:
            self.model.foreign_control = not was_foreign
        return self.faults

    def connection_attempts(self, since: float = 0.0) -> int:
        """Connections opened (reset ones included) at or after monotonic time `since`."""
        return sum(1 for entry in self.wire if entry.what == "open" and entry.t >= since)

    async def start(self) -> int:
        """Listen (port 0 picks a free port) and return the port."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.powered = True
        if self._foreign is None:
            self._foreign = asyncio.create_task(self._foreign_client())
        return self.port

    async def power_off(self, refuse: bool = False) -> None:
        """Printer gone: open connections are cut and new connects time out, as for a host
        that vanished from the LAN; with ``refuse`` they are refused instead (host up, port
        closed)."""
        self.powered = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers.values()):
            writer.transport.abort()
        if not refuse:
            self._blackhole = _Blackhole(self.host, self.port)

    async def power_on(self) -> None:
        """Listen again on the same port."""
        if self._blackhole is not None:
            self._blackhole.close()
            self._blackhole = None
        if not self.powered:
            await self.start()

    async def stop(self) -> None:
        """Power off and wait for the connection handlers to finish."""
        await self.power_off(refuse=True)
        if self._foreign is not None:
            self._foreign.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # we cancelled it just now
                await self._foreign
            self._foreign = None
        if self._blackhole is not None:
            self._blackhole.close()
            self._blackhole = None
        for _ in range(100):
            if not self._writers:
                break
            await asyncio.sleep(0.01)

    def _log(self, conn: int, what: Literal["open", "close", "in", "out"], text: str = "") -> None:
        self.wire.append(WireEntry(time.monotonic(), conn, what, text))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(self._ids)
        self._log(conn, "open", str(writer.get_extra_info("peername")))
        if self.faults.one_connection:
            _reset(writer)
            self._log(conn, "close", "reset: the one connection is another client's")
            return
        self._writers[conn] = writer
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                request = line.decode("ascii", "replace").strip()
                self._log(conn, "in", request)
                if self.faults.hang:
                    continue
                reply = self.model.handle(conn, request)
                if reply is not None and not await self._send(conn, writer, reply):
                    break
        except (ConnectionError, ValueError) as err:  # reset by peer, line over the limit
            logger.debug("simulator connection %d ended: %s", conn, err)
        finally:
            self.model.disconnect(conn)
            self._writers.pop(conn, None)
            writer.transport.abort()
            self._log(conn, "close")

    async def _send(self, conn: int, writer: asyncio.StreamWriter, lines: list[str]) -> bool:
        """Write one reply under the current faults; False when the connection was cut."""
        faults = self.faults
        if faults.hostile == "endless":
            return await self._endless(writer, lines[0])
        if faults.hostile != "none":
            lines = _hostile_lines(faults.hostile, lines)
        data = ("\r\n".join(lines) + "\r\n").encode()
        if faults.hostile == "binary":
            data = f"{lines[0]}\r\n".encode() + self._noise.randbytes(256) + b"\r\nok\r\n"
        if faults.garbage_lines:
            data = _GARBAGE + _foreign_reply(lines[0].split()[1]) + data
        if faults.reply_delay_s:
            await asyncio.sleep(faults.reply_delay_s)
        if faults.drop == "before_reply":
            return False
        if faults.drop == "mid_reply":
            writer.write(data[: len(data) // 2])
            await writer.drain()
            return False
        self._log(conn, "out", lines[0])
        if faults.cross_talk:
            for other, other_writer in list(self._writers.items()):
                if other != conn:
                    other_writer.write(data)
        if faults.split_bytes:
            for index in range(len(data)):
                writer.write(data[index : index + 1])
                await writer.drain()
                await asyncio.sleep(0.0005)
        else:
            writer.write(data)
            await writer.drain()
        return True

    async def _foreign_client(self) -> None:
        """Episode A's other client: while ``foreign_poll_hz`` is on, poll the model at that
        rate and leak each reply (true values) into every open connection."""
        foreign_conn = -1  # never a real connection id
        while True:
            hz = self.faults.foreign_poll_hz
            if hz <= 0:
                await asyncio.sleep(0.05)
                continue
            for code in ("M119", "M105", "M114"):
                lines = self.model.handle(foreign_conn, f"~{code}") or []
                data = ("\r\n".join(lines) + "\r\n").encode()
                for writer in list(self._writers.values()):
                    if not writer.is_closing():
                        writer.write(data)
            await asyncio.sleep(1.0 / hz)

    async def _endless(self, writer: asyncio.StreamWriter, header: str) -> bool:
        """A reply that never ends: payload lines until the client hangs up (or 16 MB)."""
        line = b"Endstop: X-max:1 Y-max:0 Z-max:0 and so on and so forth\r\n"
        writer.write(f"{header}\r\n".encode())
        try:
            for _ in range(16 * 1024 * 1024 // len(line)):
                writer.write(line * 64)
                await writer.drain()
        except ConnectionError:
            return False
        return False


class SimulatorThread:
    """A PrinterSimulator on its own event-loop thread, driven from synchronous code."""

    def __init__(self, simulator: PrinterSimulator | None = None) -> None:
        self.sim = simulator or PrinterSimulator()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="printer-sim", daemon=True
        )

    def __enter__(self) -> SimulatorThread:
        self._thread.start()
        self.run(self.sim.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the simulator and its loop thread."""
        if self._thread.is_alive():
            self.run(self.sim.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    @property
    def port(self) -> int:
        """The TCP port the simulator listens on."""
        return self.sim.port

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the simulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run a plain function on the simulator's loop (the model is not thread-safe)."""

        async def invoke() -> T:
            return fn()

        return self.run(invoke(), timeout)

    def set_faults(self, **changes: Any) -> Faults:
        """Change fault switches (see Faults)."""
        return self.call(lambda: self.sim.set_faults(**changes))

    def power_off(self, refuse: bool = False) -> None:
        """Printer off: open connections cut, connects time out (or are refused)."""
        self.run(self.sim.power_off(refuse))

    def power_on(self) -> None:
        """Printer on again, same port."""
        self.run(self.sim.power_on())

    def connection_attempts(self, since: float = 0.0) -> int:
        """Connections opened (reset ones included) at or after monotonic time `since`."""
        return self.call(lambda: self.sim.connection_attempts(since))

    def wire(self) -> list[WireEntry]:
        """A copy of the wire log."""
        return self.call(lambda: list(self.sim.wire))

    def open_connections(self) -> int:
        """Connections open right now."""
        return self.call(lambda: self.sim.open_connections)

    def truth(self) -> dict[str, object]:
        """The model's real state now."""
        return self.call(self.sim.model.truth)
