"""MQTT topics and payloads (architecture §4.6), without I/O.

``P`` = ``mqtt.topic_prefix``, ``G`` = gateway id, ``R`` = printer id:

* ``P/G/availability`` (retained, also the will): ``online`` / ``offline``;
* ``P/G/R/state`` (retained): the latest status record;
* ``P/G/R/event``: event and job records;
* ``P/G/R/command``: ``{"type": "pause", "params": {}, "id": "optional"}``, never executed
  when retained;
* ``P/G/R/command_result``: the command_result record.

Ids are plain (``[A-Za-z0-9_.-]``, gateway/messages.ID_PATTERN), so they never hold an MQTT
wildcard or a level separator.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.messages import (
    DECODE_ERRORS,
    Command,
    CommandId,
    CommandResult,
    Event,
    Job,
    Record,
    ShortText,
    Status,
    json_encoder,
    utc_now,
)

MAX_COMMAND_BYTES = 8 * 1024


@dataclass(frozen=True)
class Topics:
    """The topics of one gateway."""

    prefix: str
    gateway_id: str

    @property
    def availability(self) -> str:
        return f"{self.prefix}/{self.gateway_id}/availability"

    def printer(self, printer_id: str, leaf: str) -> str:
        return f"{self.prefix}/{self.gateway_id}/{printer_id}/{leaf}"

    @property
    def commands(self) -> str:
        """The subscription for every printer's command topic."""
        return f"{self.prefix}/{self.gateway_id}/+/command"

    def printer_of_command(self, topic: str) -> str | None:
        """The printer a command topic names, or None for any other topic."""
        head = f"{self.prefix}/{self.gateway_id}/"
        if not topic.startswith(head) or not topic.endswith("/command"):
            return None
        printer = topic[len(head) : -len("/command")]
        return printer if printer and "/" not in printer else None


@dataclass(frozen=True)
class Publication:
    """One message to publish."""

    topic: str
    payload: bytes
    retain: bool
    qos: int


def publication(topics: Topics, record: Record) -> Publication | None:
    """Where a record the uplink accepted goes on MQTT (None: a record of no printer)."""
    if record.printer_id is None:
        return None
    payload = json_encoder.encode(record)
    if isinstance(record, Status):
        return Publication(topics.printer(record.printer_id, "state"), payload, True, 0)
    if isinstance(record, Event | Job):
        return Publication(topics.printer(record.printer_id, "event"), payload, False, 1)
    assert isinstance(record, CommandResult)
    return Publication(topics.printer(record.printer_id, "command_result"), payload, False, 1)


class MqttCommand(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of a command message (architecture §4.6)."""

    type: ShortText
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    id: CommandId | None = None


class BadCommand(Exception):
    """A command message that cannot be read; ``command_id`` for its result."""

    def __init__(self, command_id: str, reason: str) -> None:
        super().__init__(reason)
        self.command_id = command_id
        self.reason = reason


_command_decoder = msgspec.json.Decoder(MqttCommand)


def command_from(printer_id: str, payload: bytes) -> Command:
    """The command a message asks for (an id is made when it has none); BadCommand when the
    message cannot be read. Whether the type and its params are allowed is control's call,
    the same as for the API's commands."""
    made_id = f"mqtt-{uuid.uuid4().hex[:16]}"
    if len(payload) > MAX_COMMAND_BYTES:
        raise BadCommand(made_id, f"command message over {MAX_COMMAND_BYTES} bytes")
    try:
        asked = _command_decoder.decode(payload)
    except DECODE_ERRORS as err:
        raise BadCommand(made_id, f"unreadable command message: {err}") from err
    return Command(
        id=asked.id or made_id,
        printer_id=printer_id,
        type=asked.type,
        params=asked.params,
        created_at=utc_now(),
    )
