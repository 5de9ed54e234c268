"""A camera snapshot for a notification: the first whole JPEG of an MJPEG stream (what
mjpg-streamer, the usual printer camera server, serves at ``/?action=stream``), or of a
plain JPEG answer, in bounded time and size.

A camera is a nicety: whatever it does (refuses, hangs, sends garbage or an endless frame)
costs at most ``DEADLINE_S`` and raises SnapshotError; the notification then goes without a
picture. The frame is found by walking the JPEG's segments (SOI, marker segments by their
lengths, then the entropy-coded scan until a marker that is not a stuffed byte or a restart
marker, normally EOI), not by looking for the first FF D9: an EXIF thumbnail inside APP1
holds one of those too.
"""

from __future__ import annotations

import socket
import time

import requests
import urllib3

from gateway.errors import GatewayError

DEADLINE_S = 3.0  # the most a camera may hold up a notification
MAX_BYTES = 4 * 1024 * 1024  # read no further than this looking for a frame
SOI, EOI, SOS = b"\xff\xd8", 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length


class SnapshotError(GatewayError):
    """No picture from this camera now (the reason is in the message)."""


def jpeg_end(data: bytes | bytearray, start: int) -> int | None:
    """The index just past the JPEG that begins at `start` (its SOI), None while it is
    incomplete; SnapshotError when the bytes are not a JPEG."""
    at = start + 2
    while True:
        if at + 2 > len(data):
            return None
        if data[at] != 0xFF:
            raise SnapshotError("not a JPEG: a segment does not start with a marker")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == EOI:
            return at + 2
        if marker in _STANDALONE:
            at += 2
            continue
        if at + 4 > len(data):
            return None
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if length < 2:
            raise SnapshotError("not a JPEG: a segment length below 2")
        at += 2 + length
        if marker == SOS:  # entropy-coded data: ends at a marker that is not FF00 or RSTn
            while True:
                at = data.find(b"\xff", at)
                if at < 0 or at + 1 >= len(data):
                    return None
                follower = data[at + 1]
                if follower == 0x00 or 0xD0 <= follower <= 0xD7 or follower == 0xFF:
                    at += 1 if follower == 0xFF else 2
                    continue
                break


def first_frame(data: bytes | bytearray) -> bytes | None:
    """The first whole JPEG in `data`, or None if there is none yet."""
    start = data.find(SOI)
    if start < 0:
        return None
    end = jpeg_end(data, start)
    return None if end is None else bytes(data[start:end])


def snapshot(url: str, deadline_s: float = DEADLINE_S, max_bytes: int = MAX_BYTES) -> bytes:
    """A JPEG from the camera at `url`; SnapshotError when there is none in time. Every
    wait (connect, each read) gets only the time left, so the whole call ends near
    `deadline_s` whatever the camera does; each read is looked at once (the frame is
    looked for again only from where a whole frame could now end)."""
    deadline = time.monotonic() + deadline_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SnapshotError(f"no whole JPEG within {deadline_s:g} s")
        return remaining

    data = bytearray()
    try:
        with requests.get(url, stream=True, timeout=(left(), left())) as answer:
            if answer.status_code != 200:
                raise SnapshotError(f"the camera answered HTTP {answer.status_code}")
            sock = _socket_of(answer)
            while True:
                if sock is not None:
                    sock.settimeout(left())
                # read1: whatever has arrived, so a camera that trickles bytes cannot hold
                # a read past the deadline (a plain read waits for a whole chunk).
                chunk = answer.raw.read1(65536)
                if not chunk:
                    break
                data += chunk
                if b"\xff\xd9" in data[-len(chunk) - 1 :]:  # a frame can only end at FF D9
                    picture = first_frame(data)
                    if picture is not None:
                        return picture
                if len(data) > max_bytes:
                    raise SnapshotError(f"no whole JPEG in the first {max_bytes} bytes")
                left()
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as err:
        # Whatever the camera or the network does: no picture this time, never an error
        # that escapes into the notification it was for.
        raise SnapshotError(f"the camera cannot be read: {type(err).__name__}") from err
    raise SnapshotError("the camera's answer ended before a whole JPEG")


def _socket_of(answer: requests.Response) -> socket.socket | None:
    """The connection's socket, to shorten its timeout as the deadline nears (None when
    urllib3 hides it: then each read keeps the timeout it started with)."""
    connection = getattr(answer.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None
