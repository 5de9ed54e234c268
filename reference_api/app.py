"""The reference API server's HTTP side (Starlette, served by uvicorn): architecture §4.3/4.5.

Every route but ``/healthz`` needs ``Authorization: Bearer <token>``. Bodies are decoded with
msgspec into the bounded record and command structs; a malformed body is a 400 naming the
problem (the gateway splits the batch until the bad record is alone), a body over its cap a
413 (read no further than the cap). Query parameters are checked (``limit`` at least 1,
``wait`` finite and not negative, ``after_seq`` not negative; more than the server takes,
10,000 records, 60 s or 2^63-1, gets that). Every answer carries security headers: a
Content-Security-Policy that allows the page's own inline script and style by hash only,
no framing, no MIME sniffing, no referrer.
``GET /v1/commands?wait=N`` holds the request up to N seconds (at most 60) until a command
for that gateway exists.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.messages import (
    DECODE_ERRORS,
    CommandList,
    CommandResult,
    CommandState,
    Created,
    Error,
    NewCommand,
    RecordBatch,
    StoredCount,
    utc_text,
)
from reference_api.store import Store

MAX_WAIT_S = 60.0
MAX_RECORDS_BODY = 16 * 1024 * 1024  # a gateway's batch is at most 2 MB
MAX_COMMAND_BODY = 8 * 1024  # a command is a type and a few params
MAX_LIMIT = 10_000
MAX_SEQ = 2**63 - 1
PAGE = (Path(__file__).parent / "page.html").read_text(encoding="utf-8")
_batch_decoder = msgspec.json.Decoder(RecordBatch)
_command_decoder = msgspec.json.Decoder(NewCommand)


def _inline_hashes(html: str, tag: str) -> str:
    """CSP source expressions for the page's inline <script> or <style> blocks."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
    digests = (base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in blocks)
    return " ".join(f"'sha256-{digest}'" for digest in digests)


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; connect-src 'self'; img-src 'self' data:; "
        f"script-src {_inline_hashes(PAGE, 'script')}; style-src {_inline_hashes(PAGE, 'style')}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class _TooLarge(Exception):
    """A request body over its cap."""


async def _body(request: Request, cap: int) -> bytes:
    """The request body, read no further than `cap` bytes (_TooLarge past it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _TooLarge
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > cap:
            raise _TooLarge
    return bytes(data)


def _bounded_int(text: str | None, default: int, low: int, high: int) -> int:
    """An integer query parameter: below `low` or not an integer is a ValueError, above
    `high` means `high` (ask for "everything", get the most there is)."""
    if text is None:
        return default
    value = int(text[:20]) if len(text) <= 20 else high + 1
    if value < low:
        raise ValueError(text)
    return min(value, high)


def _json(
    data: StoredCount | Created | CommandState | CommandList | Error, status_code: int = 200
) -> Response:
    """An answer in one of the documented shapes (docs/openapi.json)."""
    return Response(msgspec.json.encode(data), status_code, media_type="application/json")


def _raw_list(key: str, bodies: list[bytes]) -> Response:
    return Response(
        b'{"%s":[' % key.encode() + b",".join(bodies) + b"]}", media_type="application/json"
    )


class Api:
    """Routes bound to one store and one token."""

    def __init__(self, store: Store, token: str) -> None:
        self.store = store
        self._token = f"Bearer {token}".encode()
        self._changed = asyncio.Event()  # replaced at every change: waiters hold the old one

    def authorized(self, request: Request) -> bool:
        """Constant-time check of the bearer token."""
        return hmac.compare_digest(request.headers.get("authorization", "").encode(), self._token)

    async def post_records(self, request: Request) -> Response:
        """Store a batch; ids already stored are ignored."""
        try:
            batch = _batch_decoder.decode(await _body(request, MAX_RECORDS_BODY))
        except _TooLarge:
            return _json(Error(f"body larger than {MAX_RECORDS_BODY} bytes"), 413)
        except DECODE_ERRORS as err:
            return _json(Error(f"invalid record batch: {err}"), 400)
        stored, duplicates = self.store.store_records(batch.gateway_id, batch.records)
        if any(isinstance(r, CommandResult) for r in batch.records):
            await self._notify()
        return _json(StoredCount(stored, duplicates))

    async def get_commands(self, request: Request) -> Response:
        """Open commands of a gateway, long-polling up to ``wait`` seconds."""
        gateway_id = request.query_params.get("gateway_id", "")
        try:
            wait = float(request.query_params.get("wait", "0")[:32])
        except ValueError:
            wait = math.nan
        if not 0 <= wait < math.inf:  # also refuses nan
            return _json(Error("wait must be a finite number of seconds"), 400)
        wait = min(wait, MAX_WAIT_S)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait, 0.0)
        while True:
            changed = self._changed  # taken before the query, so no change can slip between
            commands = self.store.open_commands(gateway_id)
            left = deadline - loop.time()
            if commands or left <= 0:
                return _json(CommandList(tuple(commands)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    async def post_command(self, request: Request) -> Response:
        """Queue a command for a printer."""
        try:
            command = _command_decoder.decode(await _body(request, MAX_COMMAND_BODY))
        except _TooLarge:
            return _json(Error(f"body larger than {MAX_COMMAND_BODY} bytes"), 413)
        except DECODE_ERRORS as err:
            return _json(Error(f"invalid command: {err}"), 400)
        created = utc_text()
        try:
            command_id = self.store.add_command(command, created)
        except sqlite3.IntegrityError as err:  # the id is already taken
            return _json(Error(f"cannot queue command: {err}"), 409)
        await self._notify()
        return _json(Created(command_id), 201)

    async def get_command(self, request: Request) -> Response:
        """One command and its result."""
        command = self.store.command(request.path_params["command_id"])
        return _json(command) if command else _json(Error("no such command"), 404)

    async def get_records(self, request: Request) -> Response:
        """Stored records, filtered by printer, kind and seq."""
        query = request.query_params
        try:
            after = _bounded_int(query.get("after_seq"), 0, 0, MAX_SEQ)
            limit = _bounded_int(query.get("limit"), 1000, 1, MAX_LIMIT)
        except ValueError:
            return _json(Error(f"after_seq must be 0..{MAX_SEQ}, limit 1..{MAX_LIMIT}"), 400)
        bodies = self.store.records(
            query.get("gateway_id", ""), query.get("printer_id"), query.get("kind"), after, limit
        )
        return _raw_list("records", bodies)

    async def get_printers(self, request: Request) -> Response:
        """The newest status of every printer of a gateway."""
        return _raw_list(
            "printers", self.store.latest_statuses(request.query_params.get("gateway_id", ""))
        )

    async def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class SecurityHeaders:
    """ASGI middleware: every HTTP answer carries SECURITY_HEADERS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [
                    (name.lower().encode(), value.encode())
                    for name, value in SECURITY_HEADERS.items()
                    if name.lower().encode() not in present  # a route's own header wins
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(store: Store, token: str) -> Starlette:
    """The ASGI app."""
    api = Api(store, token)

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if not api.authorized(request):
                return _json(Error("missing or wrong bearer token"), 401)
            response: Response = await handler(request)
            return response

        return endpoint

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def page(request: Request) -> Response:
        # The page itself holds no data; its script asks for the token and every call it
        # makes carries it, so the data stays behind the bearer token.
        return HTMLResponse(PAGE)

    return Starlette(
        middleware=[Middleware(SecurityHeaders)],
        routes=[
            Route("/healthz", healthz),
            Route("/ui/{gateway_id}", page),
            Route("/v1/records", guarded(api.post_records), methods=["POST"]),
            Route("/v1/records", guarded(api.get_records), methods=["GET"]),
            Route("/v1/commands", guarded(api.get_commands), methods=["GET"]),
            Route("/v1/commands", guarded(api.post_command), methods=["POST"]),
            Route("/v1/commands/{command_id}", guarded(api.get_command), methods=["GET"]),
            Route("/v1/printers", guarded(api.get_printers), methods=["GET"]),
        ],
    )
