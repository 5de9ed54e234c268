"""The simulator's camera (architecture §6): an mjpg-streamer look-alike on the HTTP port it
is given, so snapshots and camera detection can be tested without a printer.

``GET /?action=stream`` is an endless ``multipart/x-mixed-replace`` stream of JPEG frames,
five a second; ``GET /?action=snapshot`` is one frame. Frames change over time: each is the
same small picture (``camera.jpg``) with a JPEG comment segment naming the frame number and
the time, so two frames never have the same bytes and each is still a valid JPEG.
``dead=True`` is a camera that accepts connections and never answers; ``stall=True`` one
that answers its headers and half a frame, then nothing (the cases a notification must not
wait for).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path

FRAME = (Path(__file__).parent / "camera.jpg").read_bytes()
BOUNDARY = b"simframe"
FRAME_INTERVAL_S = 0.2
MAX_REQUEST = 8192


def frame(number: int) -> bytes:
    """Frame `number`: the picture with a comment (FF FE, length, text) after its SOI."""
    text = f"printer-gateway simulator frame {number} at {time.time():.3f}".encode()
    comment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return FRAME[:2] + comment + FRAME[2:]


class Camera:
    """The HTTP side; `serve` on an asyncio server."""

    def __init__(self, dead: bool = False, stall: bool = False) -> None:
        self.dead = dead
        self.stall = stall
        self.numbers = itertools.count(1)
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        self.requests += 1
        try:
            if self.dead:
                await asyncio.sleep(3600)  # accepted, never answered
            target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            if target.endswith(b"action=stream"):
                await self._stream(writer)
            elif target.endswith(b"action=snapshot"):
                picture = frame(next(self.numbers))
                writer.write(
                    b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(picture), picture)
                )
                await writer.drain()
            else:
                writer.write(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except ConnectionError:
            pass  # the client left: nothing to tell it
        finally:
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.0 200 OK\r\nCache-Control: no-cache\r\n"
            b"Content-Type: multipart/x-mixed-replace;boundary=" + BOUNDARY + b"\r\n\r\n"
        )
        while True:
            picture = frame(next(self.numbers))
            if self.stall:
                writer.write(b"--%s\r\nContent-Type: image/jpeg\r\n\r\n" % BOUNDARY)
                writer.write(picture[: len(picture) // 2])
                await writer.drain()
                await asyncio.sleep(3600)
            writer.write(
                b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                % (BOUNDARY, len(picture), picture)
            )
            await writer.drain()
            await asyncio.sleep(FRAME_INTERVAL_S)


async def start_camera(
    host: str, port: int, dead: bool = False, stall: bool = False
) -> tuple[asyncio.Server, int]:
    """Serve a camera on host:port (0 picks a free port); returns the server and its port."""
    camera = Camera(dead, stall)
    server = await asyncio.start_server(camera.handle, host, port, limit=MAX_REQUEST)
    return server, server.sockets[0].getsockname()[1]


class CameraThread:
    """A camera on 127.0.0.1:<free port> in a thread of its own, for synchronous code (tests,
    the demo): ``with CameraThread() as camera: camera.url``."""

    def __init__(self, dead: bool = False, stall: bool = False) -> None:
        self.dead = dead
        self.stall = stall
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        """The stream's address."""
        return f"http://127.0.0.1:{self.port}/?action=stream"

    def __enter__(self) -> CameraThread:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            start_camera("127.0.0.1", 0, self.dead, self.stall), self.loop
        )
        self._server, self.port = started.result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        handlers = [task for task in asyncio.all_tasks() if task is not current]
        for task in handlers:  # streams and the dead camera's endless wait
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
