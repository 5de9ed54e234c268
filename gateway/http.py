"""HTTP as the gateway's services speak it (requests): one session per peer, TLS verified,
no redirect followed, a bounded body and a total deadline on every exchange.

Theory of operation
-------------------
requests' timeouts bound each socket operation, not the exchange: a server that drips one
byte every few seconds keeps a request alive for ever, and an answer of any size is read
whole. So every exchange here:

* runs under a **watchdog**: the connections of this client note their socket in the
  calling thread's current watch when they connect and whenever they are reused; when the
  total deadline passes, a timer shuts those sockets down, which wakes the blocked read; the
  exchange then fails as "no complete answer within N s". A socket is shut down only through
  the object that owns it, never by descriptor number (which another thread may reuse).
* reads the body **in chunks up to a cap** and drops the connection past it: an error body
  costs a few KB, a command list a few MB, however much the server sends.
* **never follows a redirect**: the token must not travel to another origin, and a command
  list from elsewhere is not a command list. A 3xx is returned like any status.

Known gap: a TLS handshake dripped byte by byte is bounded only per read (during the
handshake the socket is inside the TLS layer, not yet noted). Failures are ``HttpError``
with a reason that never carries a header or a URL's secrets.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection

from gateway.errors import GatewayError

_local = threading.local()
AUTH_RETRY_S = 15.0  # §4.3: while the API refuses the token, ask again at least this often


class HttpError(GatewayError):
    """No usable answer (connection, timeout, deadline, oversized body); the message says
    why and never contains a credential."""


@dataclass(frozen=True)
class HttpAnswer:
    """A complete answer: status, headers, the body up to the cap, and whether it was cut."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool

    def text(self) -> str:
        """The body as text (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")


class _Watch:
    """The sockets one exchange uses, shut down together when its deadline passes."""

    def __init__(self, total_s: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(total_s, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watch:
        _local.watch = self
        self._timer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()
        _local.watch = None

    def note(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if sock not in self._sockets:
                self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        if sock.fileno() >= 0:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected: nothing left to wake


def _note(sock: socket.socket | None) -> None:
    watch: _Watch | None = getattr(_local, "watch", None)
    if watch is not None:
        watch.note(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _note(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _note(self.sock)  # a kept-alive connection being reused
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _note(sock)
        return sock

    def connect(self) -> None:
        super().connect()
        _note(self.sock)  # the TLS socket that replaced the plain one

    def request(self, *args: Any, **kwargs: Any) -> None:
        _note(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager


class HttpClient:
    """One session to one peer with fixed headers (the credential among them)."""

    def __init__(self, headers: Mapping[str, str], connect_timeout_s: float = 10.0) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.session = requests.Session()
        self.session.headers.update(headers)
        self.session.trust_env = True  # proxies from the environment, TLS always verified
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, _WatchedAdapter())

    def exchange(
        self,
        method: str,
        url: str,
        *,
        total_s: float,
        max_body: int,
        must_fit: bool = False,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        """One request and its answer within `total_s`, body read up to `max_body` bytes
        (with `must_fit`, a longer body is an HttpError rather than a truncated answer)."""
        with _Watch(total_s) as watch:
            try:
                response = self.session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    params=params,
                    timeout=(min(self.connect_timeout_s, total_s), total_s),
                    allow_redirects=False,
                    stream=True,
                )
                try:
                    content, truncated = _read_capped(response, max_body)
                finally:
                    response.close()
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as err:
                if watch.expired:
                    raise HttpError(f"no complete answer within {total_s:g} s") from err
                raise HttpError(_describe(err)) from err
        if truncated and must_fit:
            raise HttpError(f"answer larger than {max_body} bytes (HTTP {response.status_code})")
        return HttpAnswer(response.status_code, response.headers, content, truncated)

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()


def _read_capped(response: requests.Response, max_body: int) -> tuple[bytes, bool]:
    """At most `max_body` bytes of the body, and whether there was more."""
    content = bytearray()
    for chunk in response.iter_content(chunk_size=16 * 1024):
        content += chunk
        if len(content) > max_body:
            return bytes(content[:max_body]), True
    return bytes(content), False


def _describe(err: BaseException) -> str:
    """What went wrong, by kind: exception texts can quote URLs with their secrets."""
    if isinstance(err, requests.Timeout):
        return "timed out"
    if isinstance(err, requests.exceptions.SSLError):
        return "TLS verification failed"
    if isinstance(err, requests.ConnectionError):
        return f"connection failed: {type(err).__name__}"
    return f"request failed: {type(err).__name__}"
