"""Generate ``docs/openapi.json`` (the v1 HTTP API, architecture §4.3 and §4.5):
``python -m console.openapi``. Schemas come from the same msgspec structs the code uses."""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from gateway.messages import (
    Command,
    CommandList,
    CommandState,
    Created,
    Error,
    Job,
    NewCommand,
    RecordBatch,
    StoredCount,
)
from reference_api.store import Chart, CommandHistory


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _query(
    name: str,
    description: str,
    kind: str = "string",
    required: bool = False,
    bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind}
    if bounds is not None:
        schema |= {"minimum": bounds[0], "maximum": bounds[1]}
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    _, components = msgspec.json.schema_components(
        [
            RecordBatch,
            CommandList,
            Command,
            NewCommand,
            StoredCount,
            Created,
            CommandState,
            Error,
            Job,
            Chart,
            CommandHistory,
        ],
        ref_template="#/components/schemas/{name}",
    )
    unauthorized = _json("Error", "missing or wrong bearer token")
    bad = _json("Error", "the body or a parameter is malformed")
    gateway = _query("gateway_id", "the gateway", required=True)
    printer_path = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in ("gateway_id", "printer_id")
    ]
    records_list = {
        "description": "stored records",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"records": {"type": "array", "items": {"type": "object"}}},
                }
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "printer-gateway v1 API",
            "version": "1",
            "description": "Generated from the code by `make schema`; do not edit.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/records": {
                "post": {
                    "summary": "Deliver records (ids already stored are ignored)",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string"},
                            "description": "fixed per stored batch",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("RecordBatch")}},
                    },
                    "responses": {
                        "200": _json("StoredCount", "all records stored"),
                        "400": bad,
                        "401": unauthorized,
                        "413": _json("Error", "body over 16 MiB: split the batch"),
                    },
                },
                "get": {
                    "summary": "Read stored records (reference server)",
                    "parameters": [
                        gateway,
                        _query("printer_id", "one printer"),
                        _query("kind", "status, event or command_result"),
                        _query(
                            "after_seq",
                            "only seq above this (statuses, which have no seq, only without it)",
                            "integer",
                            bounds=(0, 2**63 - 1),
                        ),
                        _query("limit", "at most", "integer", bounds=(1, 10_000)),
                    ],
                    "responses": {"200": records_list, "400": bad, "401": unauthorized},
                },
            },
            "/v1/commands": {
                "get": {
                    "summary": "Open commands of a gateway, long-polling up to `wait` seconds",
                    "parameters": [
                        gateway,
                        _query(
                            "wait",
                            "seconds to hold the request until a command exists",
                            "number",
                            bounds=(0, 60),
                        ),
                    ],
                    "responses": {
                        "200": _json(
                            "CommandList", "the open commands, oldest first, at most 1000"
                        ),
                        "400": bad,
                        "401": unauthorized,
                    },
                },
                "post": {
                    "summary": "Queue a command (reference server)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewCommand")}},
                    },
                    "responses": {
                        "201": _json("Created", "queued"),
                        "400": bad,
                        "401": unauthorized,
                        "413": _json("Error", "body over 8 KiB"),
                        "409": _json("Error", "the id is taken"),
                    },
                },
            },
            "/v1/commands/{command_id}": {
                "get": {
                    "summary": "One command and its result (reference server)",
                    "parameters": [
                        {
                            "name": "command_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json("CommandState", "the command"),
                        "401": unauthorized,
                        "404": _json("Error", "no such command"),
                    },
                },
            },
            "/v1/printers": {
                "get": {
                    "summary": "The newest status of each printer, of one gateway or of all "
                    "(reference server); each with its `gateway_id` and `received_at` (the "
                    "server's clock)",
                    "parameters": [_query("gateway_id", "only this gateway")],
                    "responses": {
                        "200": {
                            "description": "newest statuses",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "printers": {
                                                "type": "array",
                                                "items": {"type": "object"},
                                            }
                                        },
                                    }
                                }
                            },
                        },
                        "401": unauthorized,
                    },
                },
            },
            "/v1/printers/{gateway_id}/{printer_id}/statuses": {
                "get": {
                    "summary": "A printer's chart: its statuses over a period, full rate for "
                    "the last day and downsampled before, at most about `points` (reference "
                    "server)",
                    "parameters": [
                        *printer_path,
                        _query("since", "RFC 3339 time (default six hours ago)"),
                        _query("until", "RFC 3339 time (default now)"),
                        _query("points", "at most about this many", "integer", bounds=(1, 5000)),
                    ],
                    "responses": {
                        "200": _json("Chart", "one array per status, in `columns` order"),
                        "400": bad,
                        "401": unauthorized,
                    },
                },
            },
            "/v1/printers/{gateway_id}/{printer_id}/commands": {
                "get": {
                    "summary": "A printer's commands and their results, newest first "
                    "(reference server)",
                    "parameters": [
                        *printer_path,
                        _query("limit", "at most", "integer", bounds=(1, 1000)),
                    ],
                    "responses": {
                        "200": _json("CommandHistory", "the commands"),
                        "400": bad,
                        "401": unauthorized,
                    },
                },
            },
            "/v1/jobs": {
                "get": {
                    "summary": "Job records (print history), newest first (reference server)",
                    "parameters": [
                        gateway,
                        _query("printer_id", "one printer"),
                        _query("limit", "at most", "integer", bounds=(1, 10_000)),
                    ],
                    "responses": {
                        "200": {
                            "description": "job records",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "jobs": {"type": "array", "items": _ref("Job")}
                                        },
                                    }
                                }
                            },
                        },
                        "400": bad,
                        "401": unauthorized,
                    },
                },
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def render() -> bytes:
    """The document as stable, indented JSON."""
    return msgspec.json.format(msgspec.json.encode(openapi()), indent=2) + b"\n"


if __name__ == "__main__":
    sys.stdout.buffer.write(render())
