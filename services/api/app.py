"""The reference API server's HTTP side (Starlette, served by uvicorn): architecture §4.3/4.5.

Every route but ``/healthz`` needs ``Authorization: Bearer <token>``. Bodies are decoded with
msgspec; a malformed body is a 400 naming the problem (which the gateway dead-letters).
``GET /v1/commands?wait=N`` holds the request up to N seconds (at most 60) until a command
for that gateway exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway.messages import CommandResult, NewCommand, RecordBatch, utc_text
from services.api.store import Store

MAX_WAIT_S = 60.0
PAGE = (Path(__file__).parent / "page.html").read_text(encoding="utf-8")
_batch_decoder = msgspec.json.Decoder(RecordBatch)
_command_decoder = msgspec.json.Decoder(NewCommand)


def _json(data: Any, status_code: int = 200) -> Response:
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
            batch = _batch_decoder.decode(await request.body())
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            return _json({"error": f"invalid record batch: {err}"}, 400)
        stored, duplicates = self.store.store_records(batch.gateway_id, batch.records)
        if any(isinstance(r, CommandResult) for r in batch.records):
            await self._notify()
        return _json({"stored": stored, "duplicates": duplicates})

    async def get_commands(self, request: Request) -> Response:
        """Open commands of a gateway, long-polling up to ``wait`` seconds."""
        gateway_id = request.query_params.get("gateway_id", "")
        try:
            wait = min(float(request.query_params.get("wait", "0")), MAX_WAIT_S)
        except ValueError:
            return _json({"error": "wait must be a number of seconds"}, 400)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait, 0.0)
        while True:
            changed = self._changed  # taken before the query, so no change can slip between
            commands = self.store.open_commands(gateway_id)
            left = deadline - loop.time()
            if commands or left <= 0:
                return _json({"commands": commands})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    async def post_command(self, request: Request) -> Response:
        """Queue a command for a printer."""
        try:
            command = _command_decoder.decode(await request.body())
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            return _json({"error": f"invalid command: {err}"}, 400)
        created = utc_text()
        try:
            command_id = self.store.add_command(command, created)
        except sqlite3.IntegrityError as err:  # the id is already taken
            return _json({"error": f"cannot queue command: {err}"}, 409)
        await self._notify()
        return _json({"id": command_id}, 201)

    async def get_command(self, request: Request) -> Response:
        """One command and its result."""
        command = self.store.command(request.path_params["command_id"])
        return _json(command) if command else _json({"error": "no such command"}, 404)

    async def get_records(self, request: Request) -> Response:
        """Stored records, filtered by printer, kind and seq."""
        query = request.query_params
        try:
            after, limit = (
                int(query.get("after_seq", "0")),
                min(int(query.get("limit", "1000")), 10_000),
            )
        except ValueError:
            return _json({"error": "after_seq and limit must be integers"}, 400)
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


def create_app(store: Store, token: str) -> Starlette:
    """The ASGI app."""
    api = Api(store, token)

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if not api.authorized(request):
                return _json({"error": "missing or wrong bearer token"}, 401)
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
        routes=[
            Route("/healthz", healthz),
            Route("/ui/{gateway_id}", page),
            Route("/v1/records", guarded(api.post_records), methods=["POST"]),
            Route("/v1/records", guarded(api.get_records), methods=["GET"]),
            Route("/v1/commands", guarded(api.get_commands), methods=["GET"]),
            Route("/v1/commands", guarded(api.post_command), methods=["POST"]),
            Route("/v1/commands/{command_id}", guarded(api.get_command), methods=["GET"]),
            Route("/v1/printers", guarded(api.get_printers), methods=["GET"]),
        ]
    )
