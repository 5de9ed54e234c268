"""Records and commands as they cross process and HTTP boundaries (architecture §4.3).

These are wire structs: they never forbid unknown fields, new fields get defaults and a
field's type never changes, so a queue written by one version is read by the next. JSON
field order follows the struct order, which matches the documented shapes exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

PrinterState = Literal[
    "offline", "held_by_other_client", "idle", "printing", "paused", "completed", "error"
]
EventName = Literal[
    "print_started",
    "print_finished",
    "print_cancelled",
    "print_paused",
    "print_resumed",
    "printer_online",
    "printer_offline",
    "printer_lost_while_printing",
    "printer_held_by_other_client",
]
Outcome = Literal["done", "rejected", "failed", "expired"]
JobOutcome = Literal["completed", "cancelled", "failed", "interrupted"]
EstimateOrigin = Literal["printer", "history", "mixed", "linear", "none"]
CommandType = Literal[
    "pause", "resume", "cancel", "set_nozzle_temperature", "set_bed_temperature", "light"
]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
# Bounds of measured values: what the printer parsers accept (a value outside is garbage and
# never becomes a record), declared here so every decoder of a record (uplink, API) checks
# them too. Non-finite numbers fail them as well: JSON has no infinity.
# Physical bounds, not operating ones: a firmware sentinel for a missing sensor (-273, 999)
# passes as the printer said it; only what no sensor can read (below absolute zero,
# hotter than any hotend, not a number) is refused as garbage.
MIN_CELSIUS, MAX_CELSIUS = -273.15, 1500.0
MAX_COUNTER = 2**53 - 1  # byte counters of a print file; exact in every JSON reader
MAX_LAYER = 1_000_000
MAX_TEXT = 255  # a name, firmware, serial or file name: one line a person could read
Celsius = Annotated[float, msgspec.Meta(ge=MIN_CELSIUS, le=MAX_CELSIUS)]
Counter = Annotated[int, msgspec.Meta(ge=-MAX_COUNTER, le=MAX_COUNTER)]
LayerNumber = Annotated[int, msgspec.Meta(ge=0, le=MAX_LAYER)]
Percent = Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
# A command id names a result record and appears in logs: no control characters (C0, C1),
# no line separators or bidirectional overrides, bounded.
CommandId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]{1,128}$(?!\n)"
    ),
]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
# Ids end up in record ids ("gw:printer:..."), ipc socket names and URLs: keep them plain.
# "$(?!\n)": Python's "$" also matches before a final newline; JSON Schema's does not.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$(?!\n)"
Identifier = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
RecordId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Detail = Annotated[str, msgspec.Meta(max_length=1000)]
MAX_SECONDS = 10 * 365 * 24 * 3600.0  # a duration longer than ten years is garbage
Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_SECONDS)]
JobId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]


def utc_now() -> datetime:
    """Wall-clock now in UTC, to the millisecond (what records carry in ``ts``)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def utc_text(moment: datetime | None = None) -> str:
    """RFC 3339 text with ``Z`` of a moment (default now, to the millisecond)."""
    return (moment or utc_now()).astimezone(UTC).isoformat().replace("+00:00", "Z")


class Temperature(msgspec.Struct, frozen=True):
    """One heater: measured and target temperature in °C."""

    current: Celsius
    target: Celsius


class Progress(msgspec.Struct, frozen=True):
    """Progress as the printer counts it (totals of 100, 1000 or bytes are all seen)."""

    done: Counter
    total: Counter


class Layer(msgspec.Struct, frozen=True):
    """Layer counter, where the firmware reports one (``Layer: 44/419``)."""

    current: LayerNumber
    total: LayerNumber


class PrinterInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Who the printer says it is (M115); fields are null until read."""

    name: Text | None = None
    model: Text | None = None
    firmware: Text | None = None
    serial: Text | None = None


class JobProgress(msgspec.Struct, frozen=True, kw_only=True):
    """The print job under way, in a status: its printing time so far (heating before the
    first progress and pauses excluded) and, when trustworthy, the time left."""

    id: JobId
    started_at: AwareDatetime
    elapsed_s: Seconds
    remaining_s: Seconds | None = None
    eta: AwareDatetime | None = None
    estimate_origin: EstimateOrigin = "none"


class _Record(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Fields every record carries. ``seq`` is null until the uplink makes it durable."""

    id: RecordId
    printer_id: Identifier | None
    seq: Seq | None = None
    ts: AwareDatetime


class Status(_Record, frozen=True, kw_only=True, tag="status"):
    """A printer's state at one poll or probe; temperatures and progress null when unknown.
    The live lane's record: no ``seq`` (the API orders statuses by ``ts``)."""

    seq: None = None
    state: PrinterState
    nozzle: Temperature | None = None
    bed: Temperature | None = None
    extra_nozzles: Annotated[tuple[Temperature, ...], msgspec.Meta(max_length=15)] = ()
    progress_percent: Percent | None = None
    progress: Progress | None = None
    layer: Layer | None = None
    file: Text | None = None
    printer: PrinterInfo = msgspec.field(default_factory=PrinterInfo)
    job: JobProgress | None = None


class Event(_Record, frozen=True, kw_only=True, tag="event"):
    """Something that happened, derived from consecutive states."""

    event: EventName
    file: Text | None = None
    detail: dict[str, Any] = msgspec.field(default_factory=dict)


class Job(_Record, frozen=True, kw_only=True, tag="job"):
    """One print, sent once when it ends (reliable lane); ``print_s`` excludes the warm-up
    and the pauses."""

    job_id: JobId
    file: Text | None = None
    outcome: JobOutcome
    started_at: AwareDatetime
    ended_at: AwareDatetime
    print_s: Seconds
    warmup_s: Seconds = 0.0
    paused_s: Seconds = 0.0
    pause_count: Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNTER)] = 0
    max_progress_percent: Percent | None = None
    estimate_at_start_s: Seconds | None = None
    estimate_origin: EstimateOrigin = "none"


class CommandResult(_Record, frozen=True, kw_only=True, tag="command_result"):
    """The one result every command id gets."""

    command_id: CommandId
    outcome: Outcome
    detail: Detail = ""
    # The command's type as control received it (null from older gateways, and for a
    # message control never read): lets a consumer count results by type.
    command_type: ShortText | None = None


Record = Status | Event | Job | CommandResult


class RecordBatch(msgspec.Struct, frozen=True):
    """Body of ``POST {url}/v1/records``."""

    gateway_id: Identifier
    records: tuple[Record, ...]


class Command(msgspec.Struct, frozen=True, kw_only=True):
    """A command as the API serves it; ``type`` and ``params`` are validated by parse_action."""

    id: CommandId
    printer_id: ShortText
    type: ShortText
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None


class CommandList(msgspec.Struct, frozen=True):
    """Body of the answer to ``GET {url}/v1/commands``."""

    commands: tuple[Command, ...] = ()


class NewCommand(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/commands``: what a person asks a printer to do. The shapes are
    checked (the gateway can only run what it can read); whether a type or a temperature is
    allowed is the gateway's call, which answers ``rejected``."""

    gateway_id: Identifier
    printer_id: Identifier
    type: ShortText
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    expires_at: AwareDatetime | None = None
    id: CommandId | None = None


# Answers of the v1 API (architecture §4.5): what an API server sends back.


class StoredCount(msgspec.Struct, frozen=True):
    """Answer to ``POST /v1/records``."""

    stored: int
    duplicates: int


class Created(msgspec.Struct, frozen=True):
    """Answer to ``POST /v1/commands``."""

    id: str


class CommandState(msgspec.Struct, frozen=True):
    """Answer to ``GET /v1/commands/{id}``: the command and its result once there is one."""

    id: str
    gateway_id: str
    printer_id: str
    type: str
    params: dict[str, Any]
    created_at: str
    expires_at: str | None
    outcome: str | None
    detail: str | None


class Error(msgspec.Struct, frozen=True):
    """Any refusal."""

    error: str


# What decoding bytes from outside may raise: malformed, invalid, or nested deeper than the
# decoder's recursion limit (msgspec raises RecursionError for that, e.g. [[[[...]]]]).
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)

json_encoder = msgspec.json.Encoder()
msgpack_encoder = msgspec.msgpack.Encoder()
record_json_decoder = msgspec.json.Decoder(Record)
record_msgpack_decoder = msgspec.msgpack.Decoder(Record)
batch_json_decoder = msgspec.json.Decoder(RecordBatch)
command_list_json_decoder = msgspec.json.Decoder(CommandList)
