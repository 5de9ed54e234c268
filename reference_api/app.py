"""The reference API server's HTTP side (Starlette, served by uvicorn): architecture §4.3/4.5.

Every ``/v1`` route needs ``Authorization: Bearer <token>`` (the page and its files hold
no data). Bodies are decoded with msgspec into the bounded record and command structs; a
malformed body is a 400 naming the problem (the gateway splits the batch until the bad
record is alone), a body over its cap a 413 (read no further than the cap). Query
parameters are checked (``limit`` at least 1, ``wait`` finite and not negative,
``after_seq`` not negative; more than the server takes, 10,000 records, 60 s or 2^63-1,
gets that). Every answer carries security headers: a Content-Security-Policy that allows
only the web app's own script and style files (nothing inline), no framing, no MIME
sniffing, no referrer.
``GET /v1/commands?wait=N`` holds the request up to N seconds (at most 60) until a command
for that gateway exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
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
from reference_api.store import CHART_COLUMNS, Chart, CommandHistory, Store

MAX_WAIT_S = 60.0
MAX_RECORDS_BODY = 16 * 1024 * 1024  # a gateway's batch is at most 2 MB
MAX_COMMAND_BODY = 8 * 1024  # a command is a type and a few params
MAX_LIMIT = 10_000
MAX_SEQ = 2**63 - 1
DEFAULT_CHART_S = 6 * 3600.0
DEFAULT_POINTS = 720  # a point per 30 s over six hours: finer than a phone can show
MAX_POINTS = 5000
WEB = Path(__file__).parent / "web"
PAGE = (WEB / "index.html").read_text(encoding="utf-8")
ASSETS = {  # the web app's own files, read once: nothing else is ever served from disk
    "app.js": ((WEB / "app.js").read_bytes(), "text/javascript; charset=utf-8"),
    "app.css": ((WEB / "app.css").read_bytes(), "text/css; charset=utf-8"),
    "icon.svg": ((WEB / "icon.svg").read_bytes(), "image/svg+xml"),
}
_batch_decoder = msgspec.json.Decoder(RecordBatch)
_command_decoder = msgspec.json.Decoder(NewCommand)


SECURITY_HEADERS = {
    # The page's script and style are files of this server: nothing inline runs, so text
    # that came from a printer can never become script even if it reached the markup.
    "Content-Security-Policy": (
        "default-src 'none'; connect-src 'self'; img-src 'self' data:; "
        "script-src 'self'; style-src 'self'; "
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


def _moment_param(text: str | None, default: float) -> float:
    """An RFC 3339 time query parameter as epoch seconds (ValueError when it is not one)."""
    if text is None:
        return default
    moment = datetime.fromisoformat(text[:64])
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment.timestamp()


def _json(
    data: StoredCount | Created | CommandState | CommandList | Chart | CommandHistory | Error,
    status_code: int = 200,
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
        """The newest status of every printer of a gateway, or of every gateway: each with
        its gateway and when the server received it (a page shows how old it is by the
        server's clock, never by the Pi's, which may be wrong)."""
        rows = self.store.latest_statuses(request.query_params.get("gateway_id"))
        return _raw_list(
            "printers",
            [
                b'{"gateway_id":%s,"received_at":%s,%s'
                % (
                    msgspec.json.encode(gateway_id),
                    msgspec.json.encode(utc_text(datetime.fromtimestamp(received_at, UTC))),
                    body[1:],
                )
                for gateway_id, received_at, body in rows
            ],
        )

    async def get_statuses(self, request: Request) -> Response:
        """A printer's chart: its statuses since `since` (default six hours ago), at most
        about `points` of them."""
        query, now = request.query_params, time.time()
        try:
            since = _moment_param(query.get("since"), now - DEFAULT_CHART_S)
            until = _moment_param(query.get("until"), now)
            points = _bounded_int(query.get("points"), DEFAULT_POINTS, 1, MAX_POINTS)
        except ValueError:
            return _json(Error(f"since/until must be RFC 3339 times, points 1..{MAX_POINTS}"), 400)
        samples = self.store.samples(
            request.path_params["gateway_id"],
            request.path_params["printer_id"],
            int(since * 1000),
            int(until * 1000),
            points,
        )
        return _json(Chart(CHART_COLUMNS, samples))

    async def get_printer_commands(self, request: Request) -> Response:
        """A printer's commands with their results, newest first."""
        try:
            limit = _bounded_int(request.query_params.get("limit"), 50, 1, 1000)
        except ValueError:
            return _json(Error("limit must be 1..1000"), 400)
        commands = self.store.printer_commands(
            request.path_params["gateway_id"], request.path_params["printer_id"], limit
        )
        return _json(CommandHistory(commands))

    async def get_jobs(self, request: Request) -> Response:
        """Job records (print history), newest first."""
        query = request.query_params
        try:
            limit = _bounded_int(query.get("limit"), 100, 1, MAX_LIMIT)
        except ValueError:
            return _json(Error(f"limit must be 1..{MAX_LIMIT}"), 400)
        bodies = self.store.jobs(query.get("gateway_id", ""), query.get("printer_id"), limit)
        return _raw_list("jobs", bodies)

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

    async def asset(request: Request) -> Response:
        found = ASSETS.get(request.path_params["name"])
        if found is None:
            return _json(Error("no such file"), 404)
        return Response(found[0], media_type=found[1])

    async def favicon(request: Request) -> Response:
        # Where a browser looks without a <link rel="icon"> (a JSON page, an old bookmark):
        # the same icon, instead of a 404 in every console.
        body, media_type = ASSETS["icon.svg"]
        return Response(body, media_type=media_type)

    async def home(request: Request) -> Response:
        return RedirectResponse("/ui/")

    return Starlette(
        middleware=[Middleware(SecurityHeaders)],
        routes=[
            Route("/healthz", healthz),
            Route("/", home),
            Route("/ui/", page),
            Route("/ui/{gateway_id}", page),
            Route("/ui/{gateway_id}/{printer_id}", page),
            Route("/assets/{name}", asset),
            Route("/favicon.ico", favicon),
            Route("/v1/records", guarded(api.post_records), methods=["POST"]),
            Route("/v1/records", guarded(api.get_records), methods=["GET"]),
            Route("/v1/commands", guarded(api.get_commands), methods=["GET"]),
            Route("/v1/commands", guarded(api.post_command), methods=["POST"]),
            Route("/v1/commands/{command_id}", guarded(api.get_command), methods=["GET"]),
            Route("/v1/printers", guarded(api.get_printers), methods=["GET"]),
            Route(
                "/v1/printers/{gateway_id}/{printer_id}/statuses",
                guarded(api.get_statuses),
                methods=["GET"],
            ),
            Route(
                "/v1/printers/{gateway_id}/{printer_id}/commands",
                guarded(api.get_printer_commands),
                methods=["GET"],
            ),
            Route("/v1/jobs", guarded(api.get_jobs), methods=["GET"]),
        ],
    )
