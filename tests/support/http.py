"""The reference API server on a loopback port in a background thread, and a scripted one."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
import uvicorn

from reference_api.server import build_server
from reference_api.store import Store
from tests.support.waiting import wait_for

TOKEN = "test-token-0123"


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


@dataclass
class Script:
    """What the scripted server answers, in order; the last answer repeats."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=lambda: [(200, {})])
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    delay_s: float = 0.0


@contextmanager
def scripted_api(script: Script) -> Iterator[str]:
    """A plain HTTP server that answers POSTs from a script and records each request."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            script.requests.append((dict(self.headers), body))
            status, headers = (
                script.answers.pop(0) if len(script.answers) > 1 else script.answers[0]
            )
            time.sleep(script.delay_s)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
