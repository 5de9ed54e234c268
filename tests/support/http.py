"""HTTP servers on loopback for tests: one scripted server, and the APIs built on it.

``ScriptedServer`` answers every request with ``answer(request)`` (a ``Reply``: status,
body, headers; delayed, dripped or padded on request) and keeps every request it answered.
On it: ``scripted_api`` (answers in order from a ``Script``: the legacy API, Apprise's
json:// hooks) and ``hostile_api`` (a v1 API whose behaviours a test swaps at any moment).
``ApiThread`` is the real reference API (uvicorn) in a thread.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import requests
import uvicorn

from reference_api.server import build_server
from reference_api.store import Store
from tests.support.waiting import wait_for

TOKEN = "test-token-0123"


@dataclass(frozen=True)
class Reply:
    """What the server answers: status, body, headers; delayed, dripped or padded on request."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    drip_s: float = 0.0  # pause between single bytes of the whole answer
    padding_bytes: int = 0  # extra body bytes sent (and announced) after `body`
    delay_s: float = 0.0  # pause before answering at all


@dataclass
class Request:
    """One request as received."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Answer = Callable[[Request], Reply]


class ScriptedServer:
    """An HTTP server on 127.0.0.1:<free port>, serving while its ``with`` block runs.

    ``keep_alive`` is HTTP/1.1 with connections kept open, as real servers do (closed after
    a dripped or padded answer, which a client gives up on); without it, HTTP/1.0 with a
    connection per request. Methods outside ``methods`` get the standard library's 501 and
    are not kept.
    """

    def __init__(
        self,
        answer: Answer,
        *,
        methods: tuple[str, ...] = ("GET", "POST"),
        keep_alive: bool = True,
    ) -> None:
        self.answer = answer
        self.methods = methods
        self.keep_alive = keep_alive
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_GET(self) -> None:
                server._handle(self)

            def do_POST(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def received(self) -> list[Request]:
        """The requests answered so far, in order."""
        with self.lock:
            return list(self.requests)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.command not in self.methods:
            handler.send_error(
                HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({handler.command!r})"
            )
            return
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Request(
            time.monotonic(), handler.command, handler.path, dict(handler.headers), body
        )
        with self.lock:
            self.requests.append(request)
        reply = self.answer(request)
        time.sleep(reply.delay_s)
        self._send(handler, reply)

    def _send(self, handler: http.server.BaseHTTPRequestHandler, reply: Reply) -> None:
        reason = handler.responses[reply.status][0] if reply.status in handler.responses else ""
        headers = {
            "Server": handler.version_string(),
            "Date": handler.date_time_string(),
            **reply.headers,
            "Content-Length": str(len(reply.body) + reply.padding_bytes),
        }
        hostile = bool(reply.drip_s or reply.padding_bytes)
        if hostile:  # the client gives up on these: say the connection ends with them
            headers["Connection"] = "close"
        head = f"{handler.protocol_version} {reply.status} {reason}\r\n"
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
            pass  # the client gave up: a test may want exactly that
        if self.keep_alive:
            handler.close_connection = hostile


@dataclass
class Script:
    """What ``scripted_api`` answers, in order (the last answer repeats), and what it got."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=lambda: [(200, {})])
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    delay_s: float = 0.0
    times: list[float] = field(default_factory=list)  # time.monotonic() of each request

    def __call__(self, request: Request) -> Reply:
        self.times.append(time.monotonic())
        self.requests.append((request.headers, request.body))
        status, headers = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return Reply(status, b"{}", headers, delay_s=self.delay_s)


@contextmanager
def scripted_api(script: Script) -> Iterator[str]:
    """A plain HTTP/1.0 server answering POSTs from the script; its URL."""
    with ScriptedServer(script, methods=("POST",), keep_alive=False) as server:
        yield server.url


def stored(_: Request) -> Reply:
    """Accept the records."""
    return Reply(200, b'{"stored": 0}')


def no_commands(_: Request) -> Reply:
    """An empty command list at once (the gateway paces itself)."""
    return Reply(200, b'{"commands": []}')


def echo(status: int) -> Answer:
    """An error page that shows the request's headers, the Authorization header among them."""

    def reply(request: Request) -> Reply:
        page = json.dumps({"error": "debug", "headers": request.headers}).encode()
        return Reply(status, page, {"Content-Type": "application/json"})

    return reply


class HostileApi:
    """A v1 API that misbehaves on demand, for the hostile-API tests.

    Tests swap ``records`` (answers POSTs) and ``commands`` (answers GETs) at any moment. A
    reply can echo the request headers (as a proxy's debug page does), drip its bytes, or be
    enormous. Records of a 2xx answer are stored by id, so a test can see what arrived.
    """

    def __init__(self) -> None:
        self.records: Answer = stored
        self.commands: Answer = no_commands
        self.stored: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.server = ScriptedServer(self._answer)
        self.url = self.server.url

    @property
    def requests(self) -> list[Request]:
        """Every request seen so far."""
        return self.server.received()

    def posts(self) -> list[Request]:
        """The record deliveries seen so far."""
        return [r for r in self.requests if r.method == "POST"]

    def stored_records(self) -> list[dict[str, Any]]:
        """Records of accepted batches, each id once."""
        with self.lock:
            return list(self.stored.values())

    def _answer(self, request: Request) -> Reply:
        posting = request.method == "POST"
        reply = (self.records if posting else self.commands)(request)
        if posting and 200 <= reply.status < 300 and request.body.startswith(b'{"gateway_id"'):
            with self.lock:
                for record in json.loads(request.body)["records"]:
                    self.stored.setdefault(record["id"], record)
        return reply


@contextmanager
def hostile_api() -> Iterator[HostileApi]:
    """The hostile API on 127.0.0.1:<free port>, stopped on exit."""
    api = HostileApi()
    with api.server:
        yield api


def answers(url: str) -> bool:
    """Whether a server answers at url (any status) within a second."""
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True


class ApiThread:
    """A real uvicorn server for the reference API, on 127.0.0.1:<free port>."""

    def __init__(self, db: Path, token: str = TOKEN) -> None:
        self.store = Store(db)
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server = build_server(self.store, token, "127.0.0.1", self.port)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self.token = token

    def __enter__(self) -> ApiThread:
        self._thread.start()
        wait_for(lambda: self.server.started, 10, every_s=0.01, what="the API server to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        self.store.close()

    def get(self, path: str, **params: str | float) -> requests.Response:
        """An authorised GET."""
        return requests.get(
            f"{self.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    def post(self, path: str, json: object) -> requests.Response:
        """An authorised POST."""
        return requests.post(
            f"{self.url}{path}",
            json=json,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
