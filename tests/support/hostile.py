"""A v1 API on loopback that misbehaves on demand, for the hostile-API tests.

Tests swap ``records`` and ``commands`` (functions of the request) at any moment. A reply can
echo the request headers (as a proxy's debug page does), drip its bytes, or be enormous.
Records of a 2xx answer are stored by id, so a test can see what arrived.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    """What the server answers: status, body, headers; dripped or padded on request."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    drip_s: float = 0.0  # pause between single bytes of the whole answer
    padding_bytes: int = 0  # extra body bytes sent (and announced) after `body`


@dataclass
class Request:
    """One request as received."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def stored(_: Request) -> Reply:
    """Accept the records."""
    return Reply(200, b'{"stored": 0}')


def no_commands(_: Request) -> Reply:
    """An empty command list at once (the gateway paces itself)."""
    return Reply(200, b'{"commands": []}')


def echo(status: int) -> Callable[[Request], Reply]:
    """An error page that shows the request's headers, the Authorization header among them."""

    def reply(request: Request) -> Reply:
        page = json.dumps({"error": "debug", "headers": request.headers}).encode()
        return Reply(status, page, {"Content-Type": "application/json"})

    return reply


class HostileApi:
    """The server's state: the behaviours, every request, and the records stored."""

    def __init__(self) -> None:
        self.records: Callable[[Request], Reply] = stored
        self.commands: Callable[[Request], Reply] = no_commands
        self.requests: list[Request] = []
        self.stored: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.url = ""

    def posts(self) -> list[Request]:
        """The record deliveries seen so far."""
        with self.lock:
            return [r for r in self.requests if r.method == "POST"]

    def stored_records(self) -> list[dict[str, Any]]:
        """Records of accepted batches, each id once."""
        with self.lock:
            return list(self.stored.values())

    def _handle(self, handler: http.server.BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Request(time.monotonic(), method, handler.path, dict(handler.headers), body)
        with self.lock:
            self.requests.append(request)
        reply = (self.records if method == "POST" else self.commands)(request)
        if method == "POST" and 200 <= reply.status < 300 and body.startswith(b'{"gateway_id"'):
            with self.lock:
                for record in json.loads(body)["records"]:
                    self.stored.setdefault(record["id"], record)
        _send(handler, reply)


def _send(handler: http.server.BaseHTTPRequestHandler, reply: Reply) -> None:
    head = f"HTTP/1.1 {reply.status} Whatever\r\n"
    headers = {**reply.headers, "Content-Length": str(len(reply.body) + reply.padding_bytes)}
    hostile = bool(reply.drip_s or reply.padding_bytes)
    if hostile:  # the client gives up on these: say the connection ends with them
        headers["Connection"] = "close"
    head += "".join(f"{key}: {value}\r\n" for key, value in headers.items()) + "\r\n"
    data = head.encode() + reply.body
    try:
        if reply.drip_s:
            for index in range(len(data)):
                handler.wfile.write(data[index : index + 1])
                handler.wfile.flush()
                time.sleep(reply.drip_s)
        else:
            handler.wfile.write(data)
        chunk = b"x" * 65536
        for _ in range(reply.padding_bytes // len(chunk)):
            handler.wfile.write(chunk)
    except OSError:
        pass  # the client gave up: that is the point
    handler.close_connection = hostile


@contextmanager
def hostile_api() -> Iterator[HostileApi]:
    """The server on 127.0.0.1:<free port>, stopped on exit."""
    api = HostileApi()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

        def do_POST(self) -> None:
            api._handle(self, "POST")

        def do_GET(self) -> None:
            api._handle(self, "GET")

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
