"""Generate ``docs/records.schema.json`` from the message structs: ``python -m console.schema``."""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from gateway.messages import CommandList, RecordBatch


def records_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of the v1 record batch and command list bodies."""
    (batch, commands), components = msgspec.json.schema_components(
        [RecordBatch, CommandList], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "printer-gateway v1 records and commands",
        "description": "Generated from gateway/messages.py by `make schema`; do not edit.",
        "anyOf": [batch, commands],
        "$defs": components,
    }


def render() -> bytes:
    """The schema as stable, indented JSON with a trailing newline."""
    return msgspec.json.format(msgspec.json.encode(records_schema()), indent=2) + b"\n"


if __name__ == "__main__":
    sys.stdout.buffer.write(render())
