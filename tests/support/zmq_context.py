"""Ending a test's ZeroMQ context in bounded time.

``Context.term()`` waits for every socket to be closed and every closed socket to finish
lingering, so one socket a test forgot would hang it until the global timeout. ``terminate``
closes what is still open with LINGER 0, terms the context in a helper thread and gives up
after ``within_s``; it returns what went wrong, for the test to fail with.
"""

from __future__ import annotations

import threading
from typing import Any

import zmq


def terminate(ctx: zmq.Context[Any], within_s: float = 5.0) -> str | None:
    """Close leftover sockets (LINGER 0) and term ctx; a message naming any problem."""
    left_open = [socket for socket in list(ctx._sockets) if not socket.closed]
    described = [_describe(socket) for socket in left_open]
    for socket in left_open:
        socket.close(linger=0)
    ender = threading.Thread(target=ctx.term, name="zmq-term", daemon=True)
    ender.start()
    ender.join(within_s)
    problems = []
    if described:
        problems.append(
            f"{len(described)} ZeroMQ socket(s) left open by the test: {', '.join(described)}"
        )
    if ender.is_alive():
        problems.append(
            f"the ZeroMQ context did not terminate within {within_s:g} s "
            "(a closed socket still lingering with unsent messages?)"
        )
    return "; ".join(problems) or None


def _describe(socket: zmq.Socket[Any]) -> str:
    try:
        endpoint = socket.getsockopt(zmq.LAST_ENDPOINT)
    except zmq.ZMQError:
        endpoint = b""
    kind = socket.getsockopt(zmq.TYPE)
    name = zmq.SocketType(kind).name if isinstance(kind, int) else "socket"
    where = endpoint.decode(errors="replace") if isinstance(endpoint, bytes) else ""
    return f"{name} {where}".strip()
