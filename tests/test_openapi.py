"""docs/openapi.json is current, matches the reference server's routes, and the server's
answers decode into the documented schemas."""

from __future__ import annotations

from pathlib import Path

import msgspec
from starlette.routing import Route

from console.openapi import openapi, render
from gateway.messages import CommandList, CommandState, Created, StoredCount
from reference_api.app import create_app
from reference_api.store import Store
from tests.support.http import ApiThread

DOC = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
UNDOCUMENTED = {  # the web app, not part of the v1 API
    "/healthz",
    "/",
    "/ui/",
    "/ui/{gateway_id}",
    "/ui/{gateway_id}/{printer_id}",
    "/assets/{name}",
    "/favicon.ico",
}


def test_document_is_current() -> None:
    assert DOC.read_bytes() == render(), "docs/openapi.json is stale: run `make schema`"


def test_every_route_is_documented_and_every_documented_path_served(tmp_path: Path) -> None:
    store = Store(tmp_path / "api.db")
    served = {
        (route.path, method.lower())
        for route in create_app(store, "t").routes
        if isinstance(route, Route) and route.path not in UNDOCUMENTED
        for method in (route.methods or set()) - {"HEAD"}
    }
    store.close()
    documented = {(path, method) for path, item in openapi()["paths"].items() for method in item}
    assert served == documented


def test_answers_decode_into_the_documented_schemas(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        created = msgspec.json.decode(
            api.post(
                "/v1/commands", {"gateway_id": "gw", "printer_id": "p", "type": "pause"}
            ).content,
            type=Created,
        )
        state = msgspec.json.decode(
            api.get(f"/v1/commands/{created.id}").content, type=CommandState
        )
        assert (state.type, state.outcome) == ("pause", None)
        listing = msgspec.json.decode(
            api.get("/v1/commands", gateway_id="gw").content, type=CommandList
        )
        assert [c.id for c in listing.commands] == [created.id]
        stored = msgspec.json.decode(
            api.post("/v1/records", {"gateway_id": "gw", "records": []}).content, type=StoredCount
        )
        assert stored == StoredCount(0, 0)
